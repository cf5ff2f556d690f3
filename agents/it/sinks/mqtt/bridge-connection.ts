/**
 * The bridge's connection to its broker: a BrokerClient (agents/mqtt/broker-client.ts, which says
 * why every attempt is a fresh client) and what the bridge does on it. Because mqtt.js resends
 * nothing of an earlier connection, what was in flight when a connection broke is the sink's to
 * send again (mqtt-sink.ts), so no message is acknowledged to the sink by a connection other than
 * the one that sent it.
 *
 * Each attempt carries its own will (MQTT 3.1.1 section 3.1.2.5): the bridge's `offline`, or a
 * Sparkplug NDEATH with that attempt's bdSeq.
 */
import type { MqttClient } from 'mqtt';
import { BrokerClient } from '../../../mqtt/broker-client.ts';
import type { BrokerSettings } from '../../../mqtt/broker-settings.ts';
import type { BridgeMessage } from './bridge-format.ts';

/** Every message of the bridge: acknowledged, so the cursor can wait for it. */
export const BRIDGE_QOS = 1;
/**
 * A clean stop waits this long for the last messages' PUBACKs and the DISCONNECT, then closes the
 * socket anyway (mqtt.js's graceful end can wait for ever on a broker that went silent).
 */
export const CLOSE_BOUND_MS = 3_000;

export interface BridgeConnectionEvents {
  /** A CONNACK: publish from now on. */
  connected(): void;
  /** The connection ended (or an attempt failed after a CONNACK); nothing it sent is acknowledged any more. */
  disconnected(): void;
  /** A message on one of the settings' filters. */
  message(topic: string, payload: Buffer): void;
  problem(message: string, cause: unknown): void;
}

export interface BridgeConnectionStats {
  readonly connected: boolean;
  readonly attempts: number;
  readonly connections: number;
}

export class BridgeConnection {
  readonly #events: BridgeConnectionEvents;
  readonly #broker: BrokerClient;

  constructor(
    settings: BrokerSettings,
    will: () => BridgeMessage,
    events: BridgeConnectionEvents,
    random: () => number = Math.random,
  ) {
    this.#events = events;
    this.#broker = new BrokerClient(
      settings,
      {
        connectOptions: () => {
          const { topic, payload, retain } = will();
          return { will: { topic, payload, qos: BRIDGE_QOS, retain } };
        },
        created: (client) => {
          client.on('message', (topic, payload) => {
            if (this.#broker.isCurrent(client) && !this.#broker.stopped) events.message(topic, payload);
          });
        },
        connected: (client) => this.#onConnack(client),
        closed: (wasConnected) => {
          if (wasConnected) events.disconnected();
        },
        problem: (message, cause) => events.problem(message, cause),
      },
      { random },
    );
  }

  start(): void {
    this.#broker.start();
  }

  get connected(): boolean {
    return this.#broker.connected;
  }

  /**
   * Publishes at QoS 1 on the current connection; `acknowledged` runs at its PUBACK, and never
   * once the connection is gone. False when there is no connection (nothing was sent).
   */
  publish(message: BridgeMessage, acknowledged: () => void): boolean {
    const client = this.#broker.client;
    // Once stopping, only stop()'s own last messages go out.
    if (client === undefined || !this.#broker.connected || this.#broker.stopped) return false;
    client.publish(message.topic, message.payload, { qos: BRIDGE_QOS, retain: message.retain }, (error) => {
      if (!this.#broker.isCurrent(client)) return;
      // mqtt.js passes null, not undefined, with a PUBACK.
      if (error instanceof Error) this.#events.problem(`could not publish to ${message.topic}`, error);
      else acknowledged();
    });
    return true;
  }

  /**
   * Ends for good: `last` is published first if connected, its PUBACKs and the DISCONNECT awaited
   * for at most CLOSE_BOUND_MS (a DISCONNECT means the broker sends no will).
   */
  async stop(last: readonly BridgeMessage[]): Promise<void> {
    const client = this.#broker.stopRetrying();
    if (client === undefined) return;
    const connected = this.#broker.connected;
    let bound: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      bound = setTimeout(resolve, CLOSE_BOUND_MS);
    });
    try {
      if (connected) {
        const acknowledged = last.map(
          (message) =>
            new Promise<void>((resolve) => {
              client.publish(
                message.topic,
                message.payload,
                { qos: BRIDGE_QOS, retain: message.retain },
                () => resolve(),
              );
            }),
        );
        await Promise.race([Promise.all(acknowledged), timeout]);
        await Promise.race([new Promise<void>((resolve) => client.end(false, {}, () => resolve())), timeout]);
      }
    } finally {
      clearTimeout(bound);
      this.#broker.stop();
      // Also when the connection closed while draining (the client is then no longer current).
      client.end(true);
    }
  }

  stats(): BridgeConnectionStats {
    return { connected: this.#broker.connected, ...this.#broker.stats() };
  }

  #onConnack(client: MqttClient): void {
    const { filters } = this.#broker.settings;
    if (filters.length > 0) {
      client.subscribe(
        Object.fromEntries(filters.map((filter) => [filter, { qos: BRIDGE_QOS }])),
        (error) => {
          // Commands are an extra: without them the bridge still publishes (a closed connection
          // subscribes again on the next one).
          if (error !== null && this.#broker.isCurrent(client))
            this.#events.problem('could not subscribe', error);
        },
      );
    }
    this.#events.connected();
  }
}

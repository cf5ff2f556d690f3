/**
 * The MQTT source's connection to its broker: a BrokerClient (agents/mqtt/broker-client.ts, which
 * says why every attempt is a fresh client) and what the source does on it. After every CONNACK it
 * subscribes to every filter again; it reads one message at a time, the next only once the source
 * has taken the last (backpressure on the broker while the log is behind); it publishes at QoS 0
 * (Sparkplug rebirth requests); a stop is forced.
 */
import type { IPublishPacket, MqttClient } from 'mqtt';
import { BrokerClient } from '../../../mqtt/broker-client.ts';
import type { BrokerSettings } from '../../../mqtt/broker-settings.ts';
import type { SourceTimers } from '../source.ts';

/** SUBACK's code for a refused subscription (MQTT 3.1.1 section 3.9.3). */
const SUBACK_FAILURE = 0x80;

export interface BrokerEvents {
  /** A message; the client reads no further message until `resume` is called (backpressure). */
  message(topic: string, payload: Buffer, resume: () => void): void;
  /** Connected and subscribed (filters the broker refused are in `refused`). */
  subscribed(refused: readonly string[]): void;
  /** The connection ended; `wasConnected` if it had got as far as a CONNACK. */
  disconnected(wasConnected: boolean): void;
  problem(message: string, cause: unknown): void;
}

export interface BrokerConnectionStats {
  readonly connected: boolean;
  readonly attempts: number;
  readonly connections: number;
}

export class BrokerConnection {
  readonly #events: BrokerEvents;
  readonly #broker: BrokerClient;
  #subscribed = false;

  constructor(settings: BrokerSettings, events: BrokerEvents, timers: SourceTimers, now: () => number) {
    this.#events = events;
    this.#broker = new BrokerClient(
      settings,
      {
        created: (client) => {
          client.handleMessage = (packet: IPublishPacket, callback: () => void) => {
            this.#deliver(client, packet, callback);
          };
        },
        connected: (client) => this.#subscribe(client),
        closed: (wasConnected) => {
          this.#subscribed = false;
          events.disconnected(wasConnected);
        },
        problem: (message, cause) => events.problem(message, cause),
      },
      { timers, now },
    );
  }

  start(): void {
    this.#broker.start();
  }

  /** Closes the connection for good; a message the client was paused on is not resumed. */
  stop(): void {
    this.#subscribed = false;
    this.#broker.stop();
  }

  /** Publishes at QoS 0 if connected and subscribed; false otherwise (the caller tries again later). */
  publish(topic: string, payload: Uint8Array): boolean {
    const client = this.#broker.client;
    if (client === undefined || !this.#subscribed) return false;
    client.publish(topic, Buffer.from(payload), { qos: 0, retain: false }, (error) => {
      if (error !== undefined) this.#events.problem(`could not publish to ${topic}`, error);
    });
    return true;
  }

  stats(): BrokerConnectionStats {
    return { connected: this.#subscribed, ...this.#broker.stats() };
  }

  #deliver(client: MqttClient, packet: IPublishPacket, callback: () => void): void {
    if (!this.#broker.isCurrent(client)) {
      callback();
      return;
    }
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    let resumed = false;
    const resume = (): void => {
      if (resumed || !this.#broker.isCurrent(client)) return;
      resumed = true;
      callback();
    };
    try {
      this.#events.message(packet.topic, payload, resume);
    } catch (error) {
      this.#events.problem(`could not handle a message on ${packet.topic}`, error);
      resume();
    }
  }

  #subscribe(client: MqttClient): void {
    const { filters, qos } = this.#broker.settings;
    const subscriptions = Object.fromEntries(filters.map((filter) => [filter, { qos }]));
    client.subscribe(subscriptions, (error, requested, suback) => {
      if (!this.#broker.isCurrent(client)) return;
      // mqtt.js fails the whole call when the broker refuses any one filter; the SUBACK it passes
      // along still says, filter by filter, which ones were granted.
      const codes = suback !== undefined && 'granted' in suback ? suback.granted : undefined;
      if (error !== null && codes === undefined) {
        // The connection closed before the SUBACK: the next connection subscribes again.
        this.#events.problem('could not subscribe', error);
        return;
      }
      const refused = (requested ?? [])
        .filter((_, index) => ((codes?.[index] as number | undefined) ?? 0) & SUBACK_FAILURE)
        .map((grant) => grant.topic);
      this.#subscribed = true;
      this.#events.subscribed(refused);
    });
  }
}

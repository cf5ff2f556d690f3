/**
 * The bridge's connection to its broker, the way the MQTT source keeps its own
 * (agents/ot/sources/mqtt/broker-connection.ts, which says why): mqtt.js does the protocol, its
 * reconnect is off, and every attempt is a fresh client on a socket opened here (the same TCP or
 * verified TLS socket, the same credential files read again), retried with full-jitter backoff.
 * A fresh client also means nothing of an earlier connection is resent by mqtt.js: what was in
 * flight when a connection broke is the sink's to send again (mqtt-sink.ts), so no message is
 * acknowledged to the sink by a connection other than the one that sent it.
 *
 * Each attempt carries its own will (MQTT 3.1.1 section 3.1.2.5): the bridge's `offline`, or a
 * Sparkplug NDEATH with that attempt's bdSeq.
 */
import { MqttClient, type IClientOptions } from 'mqtt';
import { RECONNECT_BASE_MS, reconnectDelayMs, type BackoffLimits } from '../../../link/backoff.ts';
import {
  BROKER_RECONNECT_CAP_MS,
  CONNECT_TIMEOUT_MS,
  openBrokerSocket,
  readCredentials,
  STABLE_CONNECTION_MS,
  type BrokerSettings,
  type Credentials,
} from '../../../ot/sources/mqtt/broker-connection.ts';
import type { BridgeMessage } from './bridge-format.ts';

const BROKER_BACKOFF: BackoffLimits = { baseMs: RECONNECT_BASE_MS, capMs: BROKER_RECONNECT_CAP_MS };
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
  readonly #settings: BrokerSettings;
  readonly #will: () => BridgeMessage;
  readonly #events: BridgeConnectionEvents;
  readonly #random: () => number;
  #client: MqttClient | undefined;
  #connected = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #stopped = false;
  #failures = 0;
  #connectedAt: number | undefined;
  #attempts = 0;
  #connections = 0;

  constructor(
    settings: BrokerSettings,
    will: () => BridgeMessage,
    events: BridgeConnectionEvents,
    random: () => number = Math.random,
  ) {
    this.#settings = settings;
    this.#will = will;
    this.#events = events;
    this.#random = random;
  }

  start(): void {
    void this.#attempt();
  }

  get connected(): boolean {
    return this.#connected;
  }

  /**
   * Publishes at QoS 1 on the current connection; `acknowledged` runs at its PUBACK, and never
   * once the connection is gone. False when there is no connection (nothing was sent).
   */
  publish(message: BridgeMessage, acknowledged: () => void): boolean {
    const client = this.#client;
    // Once stopping, only stop()'s own last messages go out.
    if (client === undefined || !this.#connected || this.#stopped) return false;
    client.publish(message.topic, message.payload, { qos: BRIDGE_QOS, retain: message.retain }, (error) => {
      if (client !== this.#client) return;
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
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    const client = this.#client;
    if (client === undefined) return;
    const connected = this.#connected;
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
      this.#client = undefined;
      this.#connected = false;
      client.end(true);
    }
  }

  stats(): BridgeConnectionStats {
    return { connected: this.#connected, attempts: this.#attempts, connections: this.#connections };
  }

  async #attempt(): Promise<void> {
    this.#retryTimer = undefined;
    if (this.#stopped) return;
    this.#attempts++;
    let credentials: Credentials;
    try {
      credentials = await readCredentials(this.#settings);
    } catch (error) {
      this.#events.problem('could not read the broker credentials', error);
      this.#scheduleRetry(false);
      return;
    }
    if (this.#stopped) return;
    const client = new MqttClient(
      () => openBrokerSocket(this.#settings, credentials),
      this.#clientOptions(credentials),
    );
    this.#client = client;
    client.on('connect', () => this.#onConnack(client));
    client.on('message', (topic, payload) => {
      if (client === this.#client && !this.#stopped) this.#events.message(topic, payload);
    });
    client.on('error', (error) => {
      if (client === this.#client) this.#events.problem('broker connection failed', error);
    });
    client.on('close', () => this.#onClose(client));
    client.connect();
  }

  #clientOptions(credentials: Credentials): IClientOptions {
    const settings = this.#settings;
    const will = this.#will();
    return {
      manualConnect: true,
      protocolVersion: 4,
      clientId: settings.clientId,
      clean: settings.clean,
      keepalive: settings.keepaliveSeconds,
      connectTimeout: CONNECT_TIMEOUT_MS,
      // Our own reconnect and resubscribe, for the reasons at the top of broker-connection.ts.
      reconnectPeriod: 0,
      resubscribe: false,
      timerVariant: 'native',
      will: { topic: will.topic, payload: will.payload, qos: BRIDGE_QOS, retain: will.retain },
      ...(settings.username === undefined ? {} : { username: settings.username }),
      ...(credentials.password === undefined ? {} : { password: credentials.password }),
    };
  }

  #onConnack(client: MqttClient): void {
    if (client !== this.#client) return;
    this.#connectedAt = Date.now();
    this.#connections++;
    this.#connected = true;
    const { filters } = this.#settings;
    if (filters.length > 0) {
      client.subscribe(
        Object.fromEntries(filters.map((filter) => [filter, { qos: BRIDGE_QOS }])),
        (error) => {
          // Commands are an extra: without them the bridge still publishes (a closed connection
          // subscribes again on the next one).
          if (error !== null && client === this.#client) this.#events.problem('could not subscribe', error);
        },
      );
    }
    this.#events.connected();
  }

  #onClose(client: MqttClient): void {
    if (client !== this.#client) return;
    this.#client = undefined;
    const wasConnected = this.#connected;
    const stable = wasConnected && Date.now() - (this.#connectedAt ?? 0) >= STABLE_CONNECTION_MS;
    this.#connected = false;
    this.#connectedAt = undefined;
    // The stream has closed; this only releases the client's timers and stores.
    client.end(true);
    if (this.#stopped) return;
    if (wasConnected) this.#events.disconnected();
    this.#scheduleRetry(stable);
  }

  #scheduleRetry(afterStableConnection: boolean): void {
    if (this.#stopped) return;
    if (afterStableConnection) this.#failures = 0;
    const delay = reconnectDelayMs(this.#failures, BROKER_BACKOFF, this.#random);
    this.#failures++;
    this.#retryTimer = setTimeout(() => void this.#attempt(), delay);
    this.#retryTimer.unref();
  }
}

/**
 * A connection to an MQTT broker that keeps itself up, as both roles need one: the OT agent's MQTT
 * source (agents/ot/sources/mqtt/broker-connection.ts) and the IT agent's MQTT bridge
 * (agents/it/sinks/mqtt/bridge-connection.ts). mqtt.js does the protocol, this class owns the
 * lifecycle; what a side does on a connection (what it subscribes to, how it reads and publishes,
 * how it stops) is the side's, told through BrokerClientHooks.
 *
 * mqtt.js's own reconnect has known failure modes (see README, "MQTT source"): it stops for good
 * after a refused CONNACK (a broker that is restarting answers "server unavailable") unless
 * reconnectOnConnackError is set; a client whose end() never completes latches `disconnecting` and
 * never reconnects again (zigbee2mqtt issue 33150); resubscription depends on flags and session
 * state (MQTT.js issues 875, 895); and it retries at a fixed period. So its reconnect is off: every
 * attempt is a fresh client on a socket opened here (broker-socket.ts), with the credential files
 * read again, retried with exponential backoff and full jitter; every CONNACK is the side's cue to
 * subscribe again, whatever the broker says about its session (a broker restarted without
 * persistence has forgotten it). A fresh client also means mqtt.js resends nothing of an earlier
 * connection: what was in flight when one broke is the side's to send again.
 */
import { MqttClient, type IClientOptions } from 'mqtt';
import { RECONNECT_BASE_MS, reconnectDelayMs, type BackoffLimits } from '../link/backoff.ts';
import type { BrokerSettings } from './broker-settings.ts';
import { openBrokerSocket, readCredentials, type Credentials } from './broker-socket.ts';

/**
 * Retries double from half a second up to this. One agent and its local broker: there is no fleet
 * to spread out, and a broker that is back is noticed within 5 s on average.
 */
export const BROKER_RECONNECT_CAP_MS = 10_000;
const BROKER_BACKOFF: BackoffLimits = { baseMs: RECONNECT_BASE_MS, capMs: BROKER_RECONNECT_CAP_MS };
/**
 * A broker on the local network answers CONNECT in milliseconds; 10 s covers a loaded one after
 * a TLS handshake, and a dead one is tried again soon.
 */
export const CONNECT_TIMEOUT_MS = 10_000;
/**
 * A connection that lasted this long was a good one: the next failure retries from the shortest
 * delay. One that drops sooner (a broker that accepts and then kicks the client, e.g. another
 * client with the same id) keeps doubling, so two clients fighting over an id do not spin.
 */
export const STABLE_CONNECTION_MS = 10_000;

export interface BrokerClientHooks {
  /** What each attempt's CONNECT adds (the bridge's will, which is new for every attempt). */
  connectOptions?(): Partial<IClientOptions>;
  /** A fresh client, before it connects: where the side installs how it reads messages. */
  created(client: MqttClient): void;
  /** A CONNACK on the current client: subscribe, publish from now on. */
  connected(client: MqttClient): void;
  /** The current client closed while not stopped; `wasConnected` if it had got a CONNACK. */
  closed(wasConnected: boolean): void;
  problem(message: string, cause: unknown): void;
}

export interface BrokerTimers {
  setTimeout(callback: () => void, delayMs: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface BrokerClientOptions {
  /** Default: the platform's, unref'd (a retry alone does not keep the process alive). */
  readonly timers?: BrokerTimers;
  /** Milliseconds since the Unix epoch, for how long a connection lasted; default Date.now. */
  readonly now?: () => number;
  /** The backoff's jitter, [0, 1); default Math.random. */
  readonly random?: () => number;
}

export interface BrokerClientStats {
  readonly attempts: number;
  readonly connections: number;
}

const UNREF_TIMERS: BrokerTimers = {
  setTimeout: (callback, delayMs) => setTimeout(callback, delayMs).unref(),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export class BrokerClient {
  readonly #settings: BrokerSettings;
  readonly #hooks: BrokerClientHooks;
  readonly #timers: BrokerTimers;
  readonly #now: () => number;
  readonly #random: () => number;
  #client: MqttClient | undefined;
  #retryTimer: unknown;
  #stopped = false;
  #failures = 0;
  #connectedAt: number | undefined;
  #attempts = 0;
  #connections = 0;

  constructor(settings: BrokerSettings, hooks: BrokerClientHooks, options: BrokerClientOptions = {}) {
    this.#settings = settings;
    this.#hooks = hooks;
    this.#timers = options.timers ?? UNREF_TIMERS;
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
  }

  get settings(): BrokerSettings {
    return this.#settings;
  }

  /** The current attempt's client: undefined between attempts and once stopped. */
  get client(): MqttClient | undefined {
    return this.#client;
  }

  /** The current client has had its CONNACK. */
  get connected(): boolean {
    return this.#connectedAt !== undefined;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** False for a client of an earlier attempt: its late callbacks are ignored. */
  isCurrent(client: MqttClient): boolean {
    return client === this.#client;
  }

  start(): void {
    void this.#attempt();
  }

  /**
   * No attempt after this one; the current client, returned, is left to the side to finish
   * (its last messages, a DISCONNECT) before it calls stop().
   */
  stopRetrying(): MqttClient | undefined {
    this.#stopped = true;
    if (this.#retryTimer !== undefined) this.#timers.clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    return this.#client;
  }

  /**
   * Ends for good. Forced: nothing waits for acknowledgements that a dead connection would never
   * bring (a graceful end() can wait forever, and latch the client).
   */
  stop(): void {
    const client = this.stopRetrying();
    this.#client = undefined;
    this.#connectedAt = undefined;
    client?.end(true);
  }

  stats(): BrokerClientStats {
    return { attempts: this.#attempts, connections: this.#connections };
  }

  async #attempt(): Promise<void> {
    this.#retryTimer = undefined;
    if (this.#stopped) return;
    this.#attempts++;
    let credentials: Credentials;
    try {
      credentials = await readCredentials(this.#settings);
    } catch (error) {
      this.#hooks.problem('could not read the broker credentials', error);
      this.#scheduleRetry(false);
      return;
    }
    if (this.#stopped) return;
    const client = new MqttClient(
      () => openBrokerSocket(this.#settings, credentials),
      this.#clientOptions(credentials),
    );
    this.#client = client;
    this.#hooks.created(client);
    client.on('connect', () => this.#onConnack(client));
    client.on('error', (error) => {
      if (client === this.#client) this.#hooks.problem('broker connection failed', error);
    });
    client.on('close', () => this.#onClose(client));
    client.connect();
  }

  #clientOptions(credentials: Credentials): IClientOptions {
    const settings = this.#settings;
    return {
      manualConnect: true,
      protocolVersion: 4,
      clientId: settings.clientId,
      clean: settings.clean,
      keepalive: settings.keepaliveSeconds,
      connectTimeout: CONNECT_TIMEOUT_MS,
      // Our own reconnect and resubscribe, for the reasons at the top of this file.
      reconnectPeriod: 0,
      resubscribe: false,
      timerVariant: 'native',
      ...this.#hooks.connectOptions?.(),
      ...(settings.username === undefined ? {} : { username: settings.username }),
      ...(credentials.password === undefined ? {} : { password: credentials.password }),
    };
  }

  #onConnack(client: MqttClient): void {
    if (client !== this.#client) return;
    this.#connectedAt = this.#now();
    this.#connections++;
    this.#hooks.connected(client);
  }

  #onClose(client: MqttClient): void {
    if (client !== this.#client) return;
    this.#client = undefined;
    const wasConnected = this.#connectedAt !== undefined;
    const stable = wasConnected && this.#now() - (this.#connectedAt ?? 0) >= STABLE_CONNECTION_MS;
    this.#connectedAt = undefined;
    // The stream has closed; this only releases the client's timers and stores.
    client.end(true);
    if (this.#stopped) return;
    this.#hooks.closed(wasConnected);
    this.#scheduleRetry(stable);
  }

  #scheduleRetry(afterStableConnection: boolean): void {
    if (this.#stopped) return;
    if (afterStableConnection) this.#failures = 0;
    const delay = reconnectDelayMs(this.#failures, BROKER_BACKOFF, this.#random);
    this.#failures++;
    this.#retryTimer = this.#timers.setTimeout(() => void this.#attempt(), delay);
  }
}

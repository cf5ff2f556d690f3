/**
 * The MQTT source's connection to its broker: mqtt.js does the protocol, this class owns the
 * lifecycle. mqtt.js's own reconnect has known failure modes (see README, "MQTT source"): it stops
 * for good after a refused CONNACK (a broker that is restarting answers "server unavailable")
 * unless reconnectOnConnackError is set; a client whose end() never completes latches
 * `disconnecting` and never reconnects again (zigbee2mqtt issue 33150); resubscription depends on
 * flags and session state (MQTT.js issues 875, 895); and it retries at a fixed period. So its
 * reconnect is off: every attempt is a fresh client, retried with exponential backoff and full
 * jitter, and every CONNACK is followed by subscribing to every filter again, whatever the broker
 * says about its session (a broker restarted without persistence has forgotten it).
 *
 * The socket is opened here, not by mqtt.js, so that both TCP and TLS connections can leave from a
 * chosen local address (mqtt.js passes `localAddress` to TLS connections only) and so that TLS is
 * verified against the configured CA, with no option to turn the check off.
 */
import { readFile } from 'node:fs/promises';
import { connect as connectTcp, isIP, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { MqttClient, type IClientOptions, type IPublishPacket } from 'mqtt';
import { RECONNECT_BASE_MS, reconnectDelayMs, type BackoffLimits } from '../../../link/backoff.ts';
import type { SourceTimers } from '../source.ts';
import type { BrokerAddress } from './broker-url.ts';

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
/** Brokers on plant networks are often older: TLS 1.2 is the least offered, never anything below. */
export const MIN_BROKER_TLS_VERSION = 'TLSv1.2';
/** A CA bundle, a certificate, a key or a password file: large for any of them, small for memory. */
export const MAX_CREDENTIAL_FILE_BYTES = 1024 * 1024;
/** SUBACK's code for a refused subscription (MQTT 3.1.1 section 3.9.3). */
const SUBACK_FAILURE = 0x80;

export interface BrokerSettings {
  readonly address: BrokerAddress;
  readonly clientId: string;
  readonly username: string | undefined;
  readonly passwordFile: string | undefined;
  readonly caFile: string | undefined;
  readonly certFile: string | undefined;
  readonly keyFile: string | undefined;
  readonly localAddress: string | undefined;
  readonly keepaliveSeconds: number;
  readonly clean: boolean;
  readonly qos: 0 | 1 | 2;
  readonly filters: readonly string[];
}

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

export interface Credentials {
  readonly password: string | undefined;
  readonly ca: Buffer | undefined;
  readonly cert: Buffer | undefined;
  readonly key: Buffer | undefined;
}

export class BrokerConnection {
  readonly #settings: BrokerSettings;
  readonly #events: BrokerEvents;
  readonly #timers: SourceTimers;
  readonly #now: () => number;
  #client: MqttClient | undefined;
  #retryTimer: unknown;
  #stopped = false;
  #failures = 0;
  #connectedAt: number | undefined;
  #subscribed = false;
  #attempts = 0;
  #connections = 0;

  constructor(settings: BrokerSettings, events: BrokerEvents, timers: SourceTimers, now: () => number) {
    this.#settings = settings;
    this.#events = events;
    this.#timers = timers;
    this.#now = now;
  }

  start(): void {
    void this.#attempt();
  }

  /** Closes the connection for good; a message the client was paused on is not resumed. */
  stop(): void {
    this.#stopped = true;
    if (this.#retryTimer !== undefined) this.#timers.clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const client = this.#client;
    this.#client = undefined;
    // Forced: nothing waits for acknowledgements that a dead connection would never bring (a
    // graceful end() can wait forever, and latch the client).
    client?.end(true);
  }

  /** Publishes at QoS 0 if connected and subscribed; false otherwise (the caller tries again later). */
  publish(topic: string, payload: Uint8Array): boolean {
    const client = this.#client;
    if (client === undefined || !this.#subscribed) return false;
    client.publish(topic, Buffer.from(payload), { qos: 0, retain: false }, (error) => {
      if (error !== undefined) this.#events.problem(`could not publish to ${topic}`, error);
    });
    return true;
  }

  stats(): BrokerConnectionStats {
    return { connected: this.#subscribed, attempts: this.#attempts, connections: this.#connections };
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
    client.handleMessage = (packet: IPublishPacket, callback: () => void) => {
      this.#deliver(client, packet, callback);
    };
    client.on('connect', () => this.#onConnack(client));
    client.on('error', (error) => {
      if (client === this.#client) this.#events.problem('broker connection failed', error);
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
      ...(settings.username === undefined ? {} : { username: settings.username }),
      ...(credentials.password === undefined ? {} : { password: credentials.password }),
    };
  }

  #deliver(client: MqttClient, packet: IPublishPacket, callback: () => void): void {
    if (client !== this.#client) {
      callback();
      return;
    }
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    let resumed = false;
    const resume = (): void => {
      if (resumed || client !== this.#client) return;
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

  #onConnack(client: MqttClient): void {
    if (client !== this.#client) return;
    this.#connectedAt = this.#now();
    this.#connections++;
    const { filters, qos } = this.#settings;
    const subscriptions = Object.fromEntries(filters.map((filter) => [filter, { qos }]));
    client.subscribe(subscriptions, (error, requested, suback) => {
      if (client !== this.#client) return;
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

  #onClose(client: MqttClient): void {
    if (client !== this.#client) return;
    this.#client = undefined;
    const wasConnected = this.#connectedAt !== undefined;
    const stable = wasConnected && this.#now() - (this.#connectedAt ?? 0) >= STABLE_CONNECTION_MS;
    this.#connectedAt = undefined;
    this.#subscribed = false;
    // The stream has closed; this only releases the client's timers and stores.
    client.end(true);
    if (this.#stopped) return;
    this.#events.disconnected(wasConnected);
    this.#scheduleRetry(stable);
  }

  #scheduleRetry(afterStableConnection: boolean): void {
    if (this.#stopped) return;
    if (afterStableConnection) this.#failures = 0;
    const delay = reconnectDelayMs(this.#failures, BROKER_BACKOFF);
    this.#failures++;
    this.#retryTimer = this.#timers.setTimeout(() => void this.#attempt(), delay);
  }
}

/**
 * The socket of one attempt (shared with the IT side's MQTT bridge): TCP, or TLS verified against
 * the configured CA with no option to turn the check off, from the configured local address.
 */
export function openBrokerSocket(settings: BrokerSettings, credentials: Credentials): Socket {
  const { address, localAddress } = settings;
  const local = localAddress === undefined ? {} : { localAddress };
  if (address.protocol === 'mqtt') return connectTcp({ host: address.host, port: address.port, ...local });
  return connectTls({
    host: address.host,
    port: address.port,
    // SNI and the name checked against the certificate; an IP address is checked as one.
    ...(isIP(address.host) === 0 ? { servername: address.host } : {}),
    ...local,
    minVersion: MIN_BROKER_TLS_VERSION,
    rejectUnauthorized: true,
    ...(credentials.ca === undefined ? {} : { ca: credentials.ca }),
    ...(credentials.cert === undefined ? {} : { cert: credentials.cert }),
    ...(credentials.key === undefined ? {} : { key: credentials.key }),
  });
}

/** The credential files, read again for each attempt: a renewed certificate or password applies. */
export async function readCredentials(settings: BrokerSettings): Promise<Credentials> {
  const [password, ca, cert, key] = await Promise.all([
    settings.passwordFile === undefined ? undefined : readCredentialFile(settings.passwordFile),
    settings.caFile === undefined ? undefined : readCredentialFile(settings.caFile),
    settings.certFile === undefined ? undefined : readCredentialFile(settings.certFile),
    settings.keyFile === undefined ? undefined : readCredentialFile(settings.keyFile),
  ]);
  return {
    // One trailing newline is the editor's, not the password's.
    password: password?.toString('utf8').replace(/\r?\n$/, ''),
    ca,
    cert,
    key,
  };
}

async function readCredentialFile(path: string): Promise<Buffer> {
  const bytes = await readFile(path);
  if (bytes.byteLength > MAX_CREDENTIAL_FILE_BYTES) {
    throw new RangeError(`${path} is larger than ${MAX_CREDENTIAL_FILE_BYTES} bytes`);
  }
  return bytes;
}

/**
 * One shape for the three Node clients a worker drives: the dmz agent's own RelayLink, mqtt.js
 * (against mosquitto) and nats.js (against nats-server). Each connects over TLS 1.3 with its own
 * client certificate from the run's CA and the same key-exchange groups, publishes one batch as
 * one message and hands every message it receives to one callback: nothing else differs.
 */
import { connectAsync, type IClientOptions, type MqttClient } from 'mqtt';
import { connect as connectNats, type NatsConnection } from 'nats';
import type { ConnectionOptions } from 'node:tls';
import { RelayLink } from '../../agents/link/relay-link.ts';
import { TlsSessionCache } from '../../agents/link/tls-sessions.ts';
import { KEY_EXCHANGE_GROUPS, MIN_TLS_VERSION } from '../../relay/protocol/limits.ts';
import type { ClientTls, Endpoint } from './worker-protocol.ts';

/** A message as it arrived: its payload, and its point count where the protocol carries one. */
export type MessageListener = (payload: Uint8Array, count: number | undefined) => void;

export interface BenchClient {
  /** Resolves once the server has the subscription: messages published after it arrive. */
  subscribe(topic: string, listener: MessageListener): Promise<void>;
  publish(topic: string, payload: Uint8Array, points: number): void;
  /** Bytes the client holds unsent (0 where it does not say: the flow window bounds those). */
  readonly bufferedBytes: number;
  readonly closed: boolean;
  /** Messages the server said it dropped for this client (the relay's `dropped` frames). */
  readonly dropped: number;
  close(): Promise<void>;
}

export interface ConnectOptions {
  readonly connectTimeoutMs: number;
  /** Called once when the connection ends, whoever ended it. */
  readonly onClose?: () => void;
}

/** Bound on a clean close; a client still closing after it is destroyed. */
const CLOSE_TIMEOUT_MS = 3_000;
/**
 * The relay clients' TLS session tickets, as each agent's link keeps its own: one process stands
 * in for thousands of agents here, so its cache holds one per agent (at most 15,000 in a run).
 */
const RELAY_TLS_SESSIONS = new TlsSessionCache(16_384);

/** Every relay client of this process connects with a full handshake next time, as before tickets. */
export function forgetRelayTlsSessions(): void {
  RELAY_TLS_SESSIONS.clear();
}

export function connectBenchClient(
  endpoint: Endpoint,
  clientName: string,
  options: ConnectOptions,
): Promise<BenchClient> {
  switch (endpoint.kind) {
    case 'relay':
      return connectRelay(endpoint, options);
    case 'mqtt':
      return connectMqtt(endpoint.url, endpoint.tls, clientName, options);
    case 'nats':
      return connectNatsClient(endpoint.url, endpoint.tls, clientName, options);
  }
}

/** The TLS options every client gets: the agents' own minimum version and groups. */
function tlsOptions(tls: ClientTls) {
  return {
    ca: tls.caPem,
    cert: tls.certPem,
    key: tls.keyPem,
    minVersion: MIN_TLS_VERSION,
    ecdhCurve: KEY_EXCHANGE_GROUPS,
    rejectUnauthorized: true,
  } satisfies ConnectionOptions;
}

async function connectRelay(
  endpoint: Extract<Endpoint, { kind: 'relay' }>,
  options: ConnectOptions,
): Promise<BenchClient> {
  let listener: MessageListener | undefined;
  let dropped = 0;
  const client = await RelayLink.connect(
    {
      url: endpoint.url,
      ...endpoint.tls,
      software: 'dmz-bench',
      connectTimeoutMs: options.connectTimeoutMs,
      tlsSessions: RELAY_TLS_SESSIONS,
    },
    {
      delivery: (frame) => listener?.(frame.points, frame.count),
      dropped: (frame) => {
        dropped += frame.points;
      },
      ...(options.onClose === undefined ? {} : { closed: options.onClose }),
    },
  );
  let seq = 0;
  return {
    async subscribe(topic, onMessage) {
      listener = onMessage;
      const { session } = await client.openSession(endpoint.publisherName, `${endpoint.publisherName}/#`);
      await client.subscribe(session, topic);
    },
    publish(topic, payload, points) {
      client.publishBatch(topic, seq, payload, points);
      seq += points;
    },
    get bufferedBytes() {
      return client.bufferedBytes;
    },
    get closed() {
      return client.closed;
    },
    get dropped() {
      return dropped;
    },
    close: () => withTimeout(client.close()),
  };
}

async function connectMqtt(
  url: string,
  tls: ClientTls,
  clientName: string,
  options: ConnectOptions,
): Promise<BenchClient> {
  const mqttOptions: IClientOptions = {
    ...tlsOptions(tls),
    clientId: clientName,
    protocolVersion: 4,
    clean: true,
    // One connection, measured as it is: a benchmark client that reconnects by itself would hide a drop.
    reconnectPeriod: 0,
    connectTimeout: options.connectTimeoutMs,
  };
  const client: MqttClient = await connectAsync(url, mqttOptions);
  let closed = false;
  client.once('close', () => {
    closed = true;
    options.onClose?.();
  });
  return {
    async subscribe(topic, onMessage) {
      client.on('message', (_topic, payload) => onMessage(payload, undefined));
      await client.subscribeAsync(topic, { qos: 0 });
    },
    publish(topic, payload) {
      client.publish(topic, payload as Buffer, { qos: 0 });
    },
    get bufferedBytes() {
      return client.stream.writableLength;
    },
    get closed() {
      return closed;
    },
    dropped: 0,
    close: () => withTimeout(client.endAsync()),
  };
}

async function connectNatsClient(
  url: string,
  tls: ClientTls,
  clientName: string,
  options: ConnectOptions,
): Promise<BenchClient> {
  const connection: NatsConnection = await connectNats({
    servers: url,
    tls: tlsOptions(tls),
    name: clientName,
    reconnect: false,
    timeout: options.connectTimeoutMs,
  });
  let closed = false;
  void connection.closed().then(() => {
    closed = true;
    options.onClose?.();
  });
  return {
    async subscribe(topic, onMessage) {
      connection.subscribe(topic, { callback: (_error, message) => onMessage(message.data, undefined) });
      // The server has the subscription once it answers a PING sent after the SUB.
      await connection.flush();
    },
    publish(topic, payload) {
      connection.publish(topic, payload);
    },
    bufferedBytes: 0,
    get closed() {
      return closed;
    },
    dropped: 0,
    close: () => withTimeout(connection.close()),
  };
}

async function withTimeout(closing: Promise<unknown>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    closing.catch(() => undefined),
    new Promise((resolve) => (timer = setTimeout(resolve, CLOSE_TIMEOUT_MS))),
  ]);
  clearTimeout(timer);
}

/**
 * What the benchmark's coordinator (run.ts) and its client workers (client-worker.ts) say to each
 * other over Node's IPC channel (advanced serialization, so byte arrays cross as they are). A
 * worker plays one part at a time: a publisher, a subscriber, or a fleet of idle agents.
 */
import type { MessageShape } from './payloads.ts';

/** What a Node client needs to reach a system: the dmz agent, mqtt.js or nats.js, each over mTLS. */
export interface ClientTls {
  readonly caPem: string;
  readonly certPem: string;
  readonly keyPem: string;
}

export type Endpoint =
  | {
      readonly kind: 'relay';
      readonly url: string;
      readonly tls: ClientTls;
      /** The OT agent a subscriber opens its session with. */
      readonly publisherName: string;
    }
  | { readonly kind: 'mqtt'; readonly url: string; readonly tls: ClientTls }
  | { readonly kind: 'nats'; readonly url: string; readonly tls: ClientTls };

export type EndpointKind = Endpoint['kind'];

/** Open-loop publishing at a fixed rate, every message stamped with its send time. */
export interface Pace {
  readonly messagesPerSecond: number;
}

export interface LatencyCapture {
  /** Messages at the start whose latency is not kept (warm-up). */
  readonly skipMessages: number;
  readonly maxSamples: number;
}

/** Full-jitter reconnection for a fleet (settings.ts STORM), bounded in time and attempts. */
export interface ReconnectPolicy {
  readonly baseMs: number;
  readonly capMs: number;
  readonly connectTimeoutMs: number;
  /** No attempt starts after this monotonic time (clock.ts). */
  readonly untilMonotonicMs: number;
  readonly maxAttemptsPerAgent: number;
}

export type ToWorker =
  | {
      readonly op: 'subscribe';
      readonly id: number;
      readonly endpoint: Endpoint;
      readonly clientName: string;
      readonly topic: string;
      readonly shape: MessageShape;
      readonly latency?: LatencyCapture;
    }
  | {
      readonly op: 'publish';
      readonly id: number;
      readonly endpoint: Endpoint;
      readonly clientName: string;
      readonly topic: string;
      readonly shape: MessageShape;
      readonly batch: Uint8Array;
      readonly pace?: Pace;
    }
  /** Publisher: it may publish messages up to this count (cumulative). No reply. */
  | { readonly op: 'credit'; readonly allowed: number }
  /** Publisher: stop now; replies with the count published. Subscriber: replies with its report. */
  | { readonly op: 'stop'; readonly id: number }
  /** Either: disconnect. */
  | { readonly op: 'close'; readonly id: number }
  /** Fleet: make relay agent certificates for `names` (the CA signs them in this worker). */
  | {
      readonly op: 'fleetIssue';
      readonly id: number;
      readonly ca: { readonly certPem: string; readonly keyPem: string };
      readonly agentKeyPem: string;
      readonly trustDomain: string;
      readonly names: readonly string[];
    }
  | {
      readonly op: 'fleetConnect';
      readonly id: number;
      readonly endpoint: Endpoint;
      /** Agents to add; relay agents use the certificates of fleetIssue, in order. */
      readonly count: number;
      readonly concurrency: number;
      readonly timeLimitMs: number;
      /** Loopback source addresses to spread the connections over (fleet-tls.ts). */
      readonly sourceAddresses?: readonly string[];
    }
  | { readonly op: 'fleetReconnect'; readonly id: number; readonly policy: ReconnectPolicy }
  | { readonly op: 'fleetStatus'; readonly id: number }
  | { readonly op: 'fleetClose'; readonly id: number }
  /** Fleet: drop the relay agents' TLS session tickets (their next connections are full handshakes). */
  | { readonly op: 'fleetForgetTlsSessions'; readonly id: number };

export interface SubscriberReport {
  readonly messages: number;
  /** Messages whose size or point count was not the phase's, or that the relay said it dropped. */
  readonly malformed: number;
  /** Latencies in ms (send stamp to arrival), when asked for. */
  readonly latenciesMs?: Float64Array;
}

export interface FleetStatus {
  readonly connected: number;
  /** Connection attempts started, and those that failed (each with its backoff after). */
  readonly attempts: number;
  readonly failures: number;
  /** A few distinct failure messages, for the report. */
  readonly errors: readonly string[];
}

export type FromWorker =
  | { readonly op: 'ready' }
  | { readonly op: 'reply'; readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly op: 'reply'; readonly id: number; readonly ok: false; readonly error: string }
  /** Subscriber: messages received so far and the monotonic time of the last one. */
  | { readonly op: 'progress'; readonly messages: number; readonly lastAt: number };

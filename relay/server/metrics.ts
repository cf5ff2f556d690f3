/**
 * Operational metrics, served in Prometheus text format on the admin listener. Hot-path counters
 * are unlabelled or pre-bound to a label, so counting costs no label lookup per frame. Every
 * labelled counter starts at 0 for each label value it can take, so a dashboard's rate() and an
 * alert on "any refusal" work from the first scrape, not from the first event.
 */
import { X509Certificate } from 'node:crypto';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { readCrlSummary } from '../../pki/crl-reader.ts';
import { ERROR_MESSAGES, type ErrorCode } from '../protocol/errors.ts';

/** Outcomes of a routed request (routing.ts). */
export const REQUEST_OUTCOMES = ['ok', 'error', 'timeout', 'late_or_unknown'] as const;
/** Why a connection was refused before or at authentication (agent-listener.ts, broker.ts). */
export const REFUSAL_REASONS = [
  'rate_limited',
  'address_busy',
  'relay_busy',
  'tls',
  'handshake_timeout',
  'identity',
  'policy',
] as const;
/** How an admitted agent's TLS handshake went: a full one, or a resumed session (session-tickets.ts). */
export const TLS_SESSION_KINDS = ['full', 'resumed'] as const;
/**
 * What became of an enrollment request: a certificate, a refusal of the request or its token
 * (bad token, CSR, rate limit), or a fault of the relay's own (its store, its CA key).
 */
export const ENROLLMENT_OUTCOMES = ['succeeded', 'refused', 'rate_limited', 'failed'] as const;
export type EnrollmentOutcome = (typeof ENROLLMENT_OUTCOMES)[number];
/** The enrollment listener: mode off, closed (auto, no token), open, or wanted but its port cannot open. */
export const ENROLLMENT_PORT_STATES = ['off', 'closed', 'open', 'unavailable'] as const;
export type EnrollmentPortState = (typeof ENROLLMENT_PORT_STATES)[number];

/** Which way tunnel bytes went through the relay (tunnels.ts). */
export const TUNNEL_DIRECTIONS = ['to_ot', 'to_it'] as const;
/** Frame errors and disconnects carry a relay error code. */
const RELAY_CODES = (Object.keys(ERROR_MESSAGES) as ErrorCode[]).filter((code) =>
  code.startsWith('RELAY_ERR_'),
);

/** What the expiry gauges read when scraped: the PEMs the relay serves now. */
export interface CertificateMaterial {
  readonly caPem: string;
  readonly certPem: string;
  readonly crlPem: string;
}

export class RelayMetrics {
  readonly registry = new Registry();
  readonly connections = this.#gauge('dmz_relay_connections', 'Authenticated agent connections.');
  readonly sessions = this.#gauge('dmz_relay_sessions', 'Sessions open or offered.');
  readonly framesIn = this.#counter('dmz_relay_frames_received_total', 'Frames received from agents.');
  readonly pointsPublished = this.#counter(
    'dmz_relay_points_published_total',
    'Points received in publish frames.',
  );
  readonly pointsDelivered = this.#counter('dmz_relay_points_delivered_total', 'Points sent to consumers.');
  readonly pointsDropped = this.#counter(
    'dmz_relay_points_dropped_total',
    'Live points dropped because a consumer read too slowly.',
  );
  readonly requests = this.#labelled(
    'dmz_relay_requests_total',
    'Requests routed, by outcome.',
    'outcome',
    REQUEST_OUTCOMES,
  );
  readonly frameErrors = this.#labelled(
    'dmz_relay_frame_errors_total',
    'Error frames sent to agents, by code.',
    'code',
    RELAY_CODES,
  );
  readonly refused = this.#labelled(
    'dmz_relay_connections_refused_total',
    'Connections refused before or at authentication, by reason.',
    'reason',
    REFUSAL_REASONS,
  );
  readonly agentHandshakes = this.#labelled(
    'dmz_relay_agent_handshakes_total',
    'Agent TLS handshakes that passed the identity check, by session: full, or resumed from a ticket.',
    'session',
    TLS_SESSION_KINDS,
  );
  /** Set by the broker, which owns the queues; read only when scraped, so it costs the hot path nothing. */
  #largestQueue: () => number = () => 0;
  readonly maxQueuedBytes: Gauge = new Gauge({
    name: 'dmz_relay_max_queued_bytes',
    help: 'Bytes queued for the slowest agent connection, not yet written to the network.',
    registers: [this.registry],
    collect: () => {
      this.maxQueuedBytes.set(this.#largestQueue());
    },
  });
  readonly tunnelStreams = this.#gauge('dmz_relay_tunnel_streams', 'Tunnel streams open or being opened.');
  readonly tunnelBytes = this.#labelled(
    'dmz_relay_tunnel_bytes_total',
    'Tunnel stream bytes forwarded, by direction (to the OT agent, to the IT agent).',
    'direction',
    TUNNEL_DIRECTIONS,
  );
  #largestBulkLane: () => number = () => 0;
  readonly maxTunnelQueuedBytes: Gauge = new Gauge({
    name: 'dmz_relay_max_tunnel_queued_bytes',
    help: 'Tunnel bytes waiting in the bulk lane of the agent connection that has most (bounded by stream credit).',
    registers: [this.registry],
    collect: () => {
      this.maxTunnelQueuedBytes.set(this.#largestBulkLane());
    },
  });
  readonly disconnects = this.#labelled(
    'dmz_relay_disconnects_total',
    'Agent connections closed by the relay, by reason.',
    'reason',
    RELAY_CODES,
  );
  /**
   * Enrollment requests answered, by outcome. Counted by the enrollment listener:
   * `metrics.enrollments.labels('succeeded').inc()`.
   */
  readonly enrollments = this.#labelled(
    'dmz_relay_enrollments_total',
    'Enrollment requests answered, by outcome.',
    'outcome',
    ENROLLMENT_OUTCOMES,
  );
  readonly enrollmentListener = new Gauge({
    name: 'dmz_relay_enrollment_listener',
    help: 'State of the enrollment listener: 1 for its current state (off, closed, open, unavailable), 0 for the others.',
    labelNames: ['state'] as const,
    registers: [this.registry],
  });
  #certificates: () => CertificateMaterial | undefined = () => undefined;
  readonly #expiry = new ExpiryCache();
  readonly caExpiry: Gauge = this.#expiryGauge(
    'dmz_relay_ca_certificate_expiry_timestamp_seconds',
    'When the CA certificate expires (Unix time). Every agent certificate ends with it.',
    (material) => this.#expiry.certificate(material.caPem),
  );
  readonly certificateExpiry: Gauge = this.#expiryGauge(
    'dmz_relay_certificate_expiry_timestamp_seconds',
    "When the relay's own server certificate expires (Unix time); agents refuse the relay after it.",
    (material) => this.#expiry.certificate(material.certPem),
  );
  readonly crlNextUpdate: Gauge = this.#expiryGauge(
    'dmz_relay_crl_next_update_timestamp_seconds',
    "The served CRL's nextUpdate (Unix time); past it, TLS refuses every agent. The relay reissues it at half its validity.",
    (material) => this.#expiry.crl(material.crlPem),
  );

  constructor() {
    this.setEnrollmentListenerState('off');
  }

  /** The Prometheus text of the relay's metrics and the process's. */
  async text(): Promise<string> {
    return Registry.merge([this.registry, processRegistry()]).metrics();
  }

  readonly contentType = this.registry.contentType;

  /** Where the max-queued-bytes gauges read their values from: socket queues and bulk lanes. */
  observeQueues(largestQueue: () => number, largestBulkLane: () => number = () => 0): void {
    this.#largestQueue = largestQueue;
    this.#largestBulkLane = largestBulkLane;
  }

  /** Where the expiry gauges read the CA, the relay certificate and the CRL from. */
  observeCertificates(material: () => CertificateMaterial | undefined): void {
    this.#certificates = material;
  }

  setEnrollmentListenerState(current: EnrollmentPortState): void {
    for (const state of ENROLLMENT_PORT_STATES)
      this.enrollmentListener.labels(state).set(state === current ? 1 : 0);
  }

  #gauge(name: string, help: string): Gauge {
    return new Gauge({ name, help, registers: [this.registry] });
  }

  #counter(name: string, help: string): Counter {
    return new Counter({ name, help, registers: [this.registry] });
  }

  #labelled<L extends string>(name: string, help: string, label: L, values: readonly string[]): Counter<L> {
    const counter = new Counter<L>({ name, help, labelNames: [label], registers: [this.registry] });
    for (const value of values) counter.labels({ [label]: value } as Record<L, string>).inc(0);
    return counter;
  }

  #expiryGauge(
    name: string,
    help: string,
    read: (material: CertificateMaterial) => number | undefined,
  ): Gauge {
    const gauge: Gauge = new Gauge({
      name,
      help,
      registers: [this.registry],
      collect: () => {
        const material = this.#certificates();
        const seconds = material === undefined ? undefined : read(material);
        if (seconds === undefined) gauge.reset();
        else gauge.set(seconds);
      },
    });
    return gauge;
  }
}

let processMetrics: Registry | undefined;

/**
 * The Node.js process: CPU, memory, event loop lag, handles, GC (prom-client's defaults). One set
 * per process, however many relays it runs (tests run dozens): each set samples the event loop.
 */
function processRegistry(): Registry {
  if (processMetrics === undefined) {
    processMetrics = new Registry();
    collectDefaultMetrics({ register: processMetrics });
  }
  return processMetrics;
}

/** Parses each PEM once: scrapes come every few seconds, the material changes rarely. */
class ExpiryCache {
  readonly #seen = new Map<string, number | undefined>();

  certificate(pem: string): number | undefined {
    return this.#remember(pem, () => Date.parse(new X509Certificate(pem).validTo) / 1000);
  }

  crl(pem: string): number | undefined {
    return this.#remember(pem, () => readCrlSummary(pem).nextUpdate.getTime() / 1000);
  }

  #remember(pem: string, parse: () => number): number | undefined {
    if (!this.#seen.has(pem)) {
      let value: number | undefined;
      try {
        value = parse();
      } catch {
        value = undefined;
      }
      // A handful of PEMs over a relay's life; replaced ones are dropped.
      if (this.#seen.size > 8) this.#seen.clear();
      this.#seen.set(pem, value);
    }
    return this.#seen.get(pem);
  }
}

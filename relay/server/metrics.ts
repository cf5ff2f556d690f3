/**
 * Operational metrics, served in Prometheus text format on the admin listener. Hot-path counters
 * are unlabelled or pre-bound to a label, so counting costs no label lookup per frame.
 */
import { Counter, Gauge, Registry } from 'prom-client';

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
  readonly requests = new Counter({
    name: 'dmz_relay_requests_total',
    help: 'Requests routed, by outcome.',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly frameErrors = new Counter({
    name: 'dmz_relay_frame_errors_total',
    help: 'Error frames sent to agents, by code.',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });
  readonly refused = new Counter({
    name: 'dmz_relay_connections_refused_total',
    help: 'Connections refused before or at authentication, by reason.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
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
  readonly disconnects = new Counter({
    name: 'dmz_relay_disconnects_total',
    help: 'Agent connections closed by the relay, by reason.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  /** Where the max-queued-bytes gauge reads its value from. */
  observeQueues(largestQueue: () => number): void {
    this.#largestQueue = largestQueue;
  }

  #gauge(name: string, help: string): Gauge {
    return new Gauge({ name, help, registers: [this.registry] });
  }

  #counter(name: string, help: string): Counter {
    return new Counter({ name, help, registers: [this.registry] });
  }
}

/**
 * The agent's Prometheus metrics, for its loopback admin listener: each read from the status
 * snapshot when scraped, so counting costs the data path nothing.
 */
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { AgentStatus } from './status.ts';

/** A scrape's gauges are collected within a few milliseconds; a second covers them all. */
const SNAPSHOT_REUSE_MS = 1_000;

export class AgentMetrics {
  readonly registry = new Registry();

  constructor(takeSnapshot: () => AgentStatus) {
    // One snapshot serves every gauge of a scrape: taking one walks every stream.
    let cached: { status: AgentStatus; at: number } | undefined;
    const snapshot = (): AgentStatus => {
      const now = Date.now();
      if (cached === undefined || now - cached.at > SNAPSHOT_REUSE_MS)
        cached = { status: takeSnapshot(), at: now };
      return cached.status;
    };
    collectDefaultMetrics({ register: this.registry, prefix: 'dmz_agent_' });
    const gauge = (
      name: string,
      help: string,
      labelNames: string[],
      read: (set: (labels: Record<string, string>, value: number) => void, status: AgentStatus) => void,
    ) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers: [this.registry],
        collect() {
          this.reset();
          read((labels, value) => this.set(labels, value), snapshot());
        },
      });
    gauge('dmz_agent_relay_connected', '1 while the link to the relay is up.', [], (set, s) =>
      set({}, s.relay.connected ? 1 : 0),
    );
    gauge('dmz_agent_relay_connects_total', 'Links to the relay opened since start.', [], (set, s) =>
      set({}, s.relay.connects),
    );
    gauge(
      'dmz_agent_certificate_expiry_seconds',
      'Seconds until the agent certificate expires.',
      [],
      (set, s) => set({}, Math.round((Date.parse(s.certificate.notAfter) - Date.now()) / 1000)),
    );
    gauge('dmz_agent_points_logged_total', 'Points appended durably to the OT log.', [], (set, s) => {
      if (s.ot !== undefined) set({}, s.ot.pointsLogged);
    });
    gauge('dmz_agent_points_sent_total', 'Points sent live after they were durable.', [], (set, s) => {
      if (s.ot !== undefined) set({}, s.ot.pointsSent);
    });
    gauge(
      'dmz_agent_points_left_to_replay_total',
      'Durable points not sent live (no link, or link full).',
      [],
      (set, s) => {
        if (s.ot !== undefined) set({}, s.ot.pointsLeftToReplay);
      },
    );
    gauge('dmz_agent_points_replayed_total', 'Points sent again in replay rounds.', [], (set, s) => {
      if (s.ot !== undefined) set({}, s.ot.replay.pointsReplayed);
    });
    gauge('dmz_agent_log_bytes', 'Bytes the OT log takes on disk.', [], (set, s) => {
      if (s.ot !== undefined) set({}, s.ot.log.bytes);
    });
    gauge('dmz_agent_log_max_bytes', 'The OT log disk budget.', [], (set, s) => {
      if (s.ot !== undefined) set({}, s.ot.log.maxBytes);
    });
    gauge(
      'dmz_agent_points_acknowledged_total',
      'Points an IT sink holds durably, by consumer.',
      ['consumer'],
      (set, s) => {
        for (const consumer of s.it?.consumers ?? [])
          set({ consumer: consumer.name }, consumer.pointsWritten);
      },
    );
    gauge(
      'dmz_agent_holes_total',
      'Batches that arrived beyond the next expected point (filled by replay), by consumer.',
      ['consumer'],
      (set, s) => {
        for (const consumer of s.it?.consumers ?? []) set({ consumer: consumer.name }, consumer.holes);
      },
    );
    gauge(
      'dmz_agent_replay_rounds_total',
      'Replay rounds a consumer asked for, by consumer.',
      ['consumer'],
      (set, s) => {
        for (const consumer of s.it?.consumers ?? []) set({ consumer: consumer.name }, consumer.rounds);
      },
    );
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/**
 * The agent's Prometheus metrics, for its loopback admin listener: each read from the status
 * snapshot when scraped, so counting costs the data path nothing.
 */
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { AgentStatus } from './status.ts';

/** A scrape's gauges are collected within a few milliseconds; a second covers them all. */
const SNAPSHOT_REUSE_MS = 1_000;
/**
 * An error label is cut to this: enough for the message a status line shows, and a scrape of a
 * broker that fails with a long, changing message stays small (the status has the whole text).
 */
const MAX_ERROR_LABEL = 200;

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
    gauge('dmz_agent_tunnel_streams', 'Tunnel streams open at this end.', [], (set, s) => {
      if (s.tunnels !== undefined) set({}, s.tunnels.open);
    });
    gauge(
      'dmz_agent_tunnel_bytes_total',
      'Tunnel bytes through this end, by direction (sent to the relay, received from it).',
      ['direction'],
      (set, s) => {
        if (s.tunnels === undefined) return;
        set({ direction: 'sent' }, s.tunnels.bytesSent);
        set({ direction: 'received' }, s.tunnels.bytesReceived);
      },
    );
    gauge(
      'dmz_agent_tunnel_buffered_bytes',
      'Bytes the open tunnel streams hold at this end (each at most its window and one read).',
      [],
      (set, s) => {
        if (s.tunnels !== undefined) set({}, s.tunnels.bufferedBytes);
      },
    );
    gauge(
      'dmz_agent_writes_total',
      'Write commands answered (OT) or sent (IT), by outcome (done, refused, failed) and code.',
      ['outcome', 'code'],
      (set, s) => {
        if (s.writes === undefined) return;
        set({ outcome: 'done', code: '' }, s.writes.done);
        for (const [code, count] of Object.entries(s.writes.refused))
          set({ outcome: 'refused', code }, count);
        for (const [code, count] of Object.entries(s.writes.failed)) set({ outcome: 'failed', code }, count);
      },
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
      'dmz_agent_stream_resets_total',
      'Streams reset because the OT log no longer had what the sink held (re-created or restored), by consumer.',
      ['consumer'],
      (set, s) => {
        for (const consumer of s.it?.consumers ?? [])
          set({ consumer: consumer.name }, consumer.resetsWritten);
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
    // What sinks report of themselves (sink.ts SinkReport), by sink: the MQTT bridge's broker link.
    const sinkGauge = (name: string, help: string, counter: string) =>
      gauge(name, help, ['sink'], (set, s) => {
        for (const sink of s.it?.sinks ?? []) {
          const value = sink[counter];
          if (typeof value === 'number') set({ sink: sink.name }, value);
          else if (typeof value === 'boolean') set({ sink: sink.name }, value ? 1 : 0);
        }
      });
    sinkGauge(
      'dmz_agent_sink_connected',
      "1 while a sink's broker connection is up (MQTT bridge).",
      'connected',
    );
    sinkGauge(
      'dmz_agent_sink_in_flight',
      'Messages a sink has sent and the broker not yet acknowledged (MQTT bridge).',
      'inFlight',
    );
    sinkGauge(
      'dmz_agent_sink_acknowledged_total',
      'Messages the broker acknowledged to a sink since start (MQTT bridge).',
      'acknowledged',
    );
    gauge(
      'dmz_agent_sink_last_error_info',
      "A sink's last error, as a label (1 once it had one; cut to 200 characters).",
      ['sink', 'error'],
      (set, s) => {
        for (const sink of s.it?.sinks ?? []) {
          const error = sink['lastError'];
          if (typeof error === 'string') set({ sink: sink.name, error: error.slice(0, MAX_ERROR_LABEL) }, 1);
        }
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

/**
 * What the role parts (agent-parts.ts) put in the agent's status snapshot (status.json,
 * `dmz-agent status`, /metrics): read from the parts' own stats, nothing kept here.
 */
import type { ItPart, OtPart } from './agent-parts.ts';
import { streamPositions, type AgentStatus } from './status.ts';

/** The OT part's share of the status snapshot: the log, the publisher, replay, sources, streams. */
export function otStatus(ot: OtPart): NonNullable<AgentStatus['ot']> {
  const streams = ot.log.streams();
  const publisher = ot.publisher.stats();
  const replay = ot.replay.stats();
  return {
    log: { bytes: ot.log.bytesOnDisk(), maxBytes: ot.settings.log.maxBytes, streams: streams.length },
    ...publisher,
    replay: {
      rounds: replay.rounds,
      pointsReplayed: replay.pointsReplayed,
      gaps: replay.gaps,
      resets: replay.resets,
    },
    sessions: ot.sessions.size,
    sources: ot.sources.map((source) => {
      const stats = source.stats();
      return { name: source.name, readings: stats.readings, lastError: stats.lastError?.message };
    }),
    streams: streamPositions(streams.map((topic) => [topic, ot.log.lastSeq(topic)] as const)),
    streamCount: streams.length,
  };
}

/** The IT part's share: each consumer with its sink's cursors, and the sinks that report. */
export function itStatus(it: ItPart): NonNullable<AgentStatus['it']> {
  return {
    consumers: it.consumers.map(({ consumer, sink, settings: config }) => {
      const cursors = sink.cursors();
      const stats = consumer.stats();
      return {
        name: consumer.name,
        from: config.from,
        filter: config.filter,
        sink: config.sink,
        state: stats.state,
        session: stats.session,
        rounds: stats.rounds,
        pointsWritten: stats.pointsWritten,
        gapsWritten: stats.gapsWritten,
        resetsWritten: stats.resetsWritten,
        holes: stats.holes,
        droppedNotices: stats.droppedNotices,
        lastError: stats.lastError,
        streams: streamPositions(cursors),
        streamCount: cursors.size,
      };
    }),
    // Sinks with something of their own to say (the MQTT bridge's broker connection).
    sinks: it.sinks.flatMap((sink) => {
      const report = sink.report?.();
      return report === undefined ? [] : [{ name: sink.name, ...report }];
    }),
  };
}

/** Points and gaps as the API shows them: JSON with ISO times, units where configured. */
import { topicMatches } from '../../../relay/protocol/topics.ts';
import type { Point } from '../../points/point.ts';
import { MAX_RECENT_TOPICS } from '../sinks/recent-limits.ts';
import type { RecentEntry, RecentSink, TopicSummary } from '../sinks/recent-sink.ts';
import { formatCursor } from './cursor.ts';
import type { HistoryEntryBody, TopicValueBody } from './schemas.ts';

/** The first configured rule whose filter matches a topic gives its value (a unit, a write type). */
export interface TopicTable<T> {
  of(topic: string): T | undefined;
  /** Topics remembered now (at most the table's capacity). */
  readonly remembered: number;
}

/**
 * Remembered per topic: a screen of points asks for the same topics again and again. At most as
 * many topics as the store holds are remembered, the oldest forgotten first: a client can send
 * POST /writes any number of well-formed topics, and each would otherwise stay for good.
 */
export function topicTable<T>(
  rules: readonly { readonly filter: string; readonly value: T }[],
  capacity = MAX_RECENT_TOPICS,
): TopicTable<T> {
  const known = new Map<string, T | undefined>();
  return {
    of(topic) {
      if (known.has(topic)) return known.get(topic);
      const value = rules.find((rule) => topicMatches(rule.filter, topic))?.value;
      if (known.size >= capacity) known.delete(known.keys().next().value as string);
      known.set(topic, value);
      return value;
    },
    get remembered() {
      return known.size;
    },
  };
}

export interface TopicTables {
  readonly units: TopicTable<string>;
  readonly writable: TopicTable<'number' | 'boolean' | 'string'>;
}

function pointFields(point: Point) {
  return {
    topic: point.topic,
    seq: point.seq,
    value: point.value as TopicValueBody['value'],
    quality: point.quality,
    ...(point.reason === undefined ? {} : { reason: point.reason }),
    sourceTime: new Date(point.sourceTime).toISOString(),
  };
}

export function topicValueBody(summary: TopicSummary, tables: TopicTables): TopicValueBody | undefined {
  const entry = summary.current?.entry;
  if (entry?.kind !== 'point') return undefined;
  const unit = tables.units.of(summary.topic);
  const writable = tables.writable.of(summary.topic);
  return {
    ...pointFields(entry.point),
    ...(unit === undefined ? {} : { unit }),
    ...(writable === undefined ? {} : { writable }),
    gaps: summary.gaps,
  };
}

export function historyEntryBody(store: RecentSink, held: RecentEntry): HistoryEntryBody {
  const cursor = formatCursor(store, held.id);
  const { entry } = held;
  switch (entry.kind) {
    case 'point':
      return { cursor, kind: 'point', ...pointFields(entry.point) };
    case 'gap':
      return {
        cursor,
        kind: 'gap',
        topic: entry.topic,
        from: entry.from,
        to: entry.to,
        reason: entry.reason,
      };
    case 'reset':
      return {
        cursor,
        kind: 'reset',
        topic: entry.topic,
        from: entry.from,
        held: entry.held,
        reason: entry.reason,
      };
  }
}

/**
 * The recent-values sink's section of agent.yaml (`it.sinks[]` with `type: recent`): its schema and
 * what it resolves to. agent config.ts embeds the schema and calls resolveRecentSink.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { ConfigIssue } from '../../../relay/protocol/errors.ts';
import { formatDuration, parseDuration } from '../../../pki/duration.ts';
import {
  DEFAULT_HISTORY_ENTRIES,
  DEFAULT_HISTORY_PER_TOPIC,
  DEFAULT_MAX_AGE,
  DEFAULT_SNAPSHOT_INTERVAL,
  MAX_HISTORY_ENTRIES,
  MAX_HISTORY_PER_TOPIC,
} from './recent-limits.ts';

export const RecentSinkSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 63 }),
    type: Type.Literal('recent'),
    /** Where its snapshot lives; default `<state>/sinks/<name>`. */
    dir: Type.Optional(Type.String({ minLength: 1 })),
    /** Entries kept per topic (its current value is always kept). */
    historyPerTopic: Type.Integer({
      minimum: 1,
      maximum: MAX_HISTORY_PER_TOPIC,
      default: DEFAULT_HISTORY_PER_TOPIC,
    }),
    /** Entries kept across all topics, oldest first out (current values are always kept). */
    historyEntries: Type.Integer({
      minimum: 1,
      maximum: MAX_HISTORY_ENTRIES,
      default: DEFAULT_HISTORY_ENTRIES,
    }),
    /** Points older than this (by source time) leave the history. */
    maxAge: Type.String({ minLength: 2, maxLength: 16, default: DEFAULT_MAX_AGE }),
    /** How often the snapshot is rewritten while points arrive. */
    snapshotInterval: Type.String({ minLength: 2, maxLength: 16, default: DEFAULT_SNAPSHOT_INTERVAL }),
  },
  { additionalProperties: false },
);

export interface RecentSinkConfig {
  readonly name: string;
  readonly type: 'recent';
  readonly dir: string;
  readonly historyPerTopic: number;
  readonly historyEntries: number;
  readonly maxAgeMs: number;
  readonly snapshotIntervalMs: number;
}

const BOUNDS = {
  maxAge: { min: 60_000, max: 7 * 86_400_000 },
  snapshotInterval: { min: 1_000, max: 3_600_000 },
} as const;

/** The section with paths resolved (`path`) and durations parsed; problems go to `issues` under `at`. */
export function resolveRecentSink(
  raw: Static<typeof RecentSinkSchema>,
  at: string,
  state: string,
  path: (value: string) => string,
  issues: ConfigIssue[],
): RecentSinkConfig {
  const duration = (key: keyof typeof BOUNDS): number => {
    const { min, max } = BOUNDS[key];
    const ms = parseDuration(raw[key], { milliseconds: true });
    if (ms !== undefined && ms >= min && ms <= max) return ms;
    issues.push({
      path: `${at}/${key}`,
      message: `must be a duration from ${formatDuration(min)} to ${formatDuration(max)}`,
    });
    return Number.NaN;
  };
  return {
    name: raw.name,
    type: 'recent',
    dir: raw.dir === undefined ? `${state}/sinks/${raw.name}` : path(raw.dir),
    historyPerTopic: raw.historyPerTopic,
    historyEntries: raw.historyEntries,
    maxAgeMs: duration('maxAge'),
    snapshotIntervalMs: duration('snapshotInterval'),
  };
}

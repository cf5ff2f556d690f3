/**
 * What an MQTT source counts, beyond every source's counters: the broker connection, messages, the
 * backpressure it applied, and every reading or message it did not write, by reason. Nothing is
 * dropped without being counted here.
 */
import type { SourceStats } from '../source.ts';
import type { SparkplugStats } from './sparkplug/host.ts';

export const DROP_REASONS = [
  /** The buffer was full past the pause limit: the oldest waiting reading made room. */
  'buffer-full',
  /** A mapping's rendered topic, or a metric's, does not fit the topic grammar. */
  'invalid-topic',
  /** The source writes MAX_TOPICS_PER_SOURCE topics already. */
  'too-many-topics',
  /** Another mapping or metric writes that topic already. */
  'topic-collision',
  /** A message on a topic no mapping matches (a broker may deliver overlapping subscriptions). */
  'unmatched',
  /** Sparkplug: DataSet, Bytes, File, Template and property set metrics have no point value. */
  'unsupported-metric',
  /** Sparkplug: an alias no birth declared. */
  'unknown-metric',
  /** Sparkplug: data from an edge node or device without a birth in this session. */
  'not-born',
  /** Sparkplug: a payload that does not decode, or is too large to try. */
  'undecodable',
  /** Sparkplug: more edge nodes, or devices of one, than a source follows. */
  'too-many-devices',
  /** Readings still waiting when the source was stopped. */
  'stopped',
] as const;
export type DropReason = (typeof DROP_REASONS)[number];

export interface MqttSourceStats extends SourceStats {
  /** Connected to the broker and subscribed. */
  readonly connected: boolean;
  readonly connectionAttempts: number;
  /** Connections that got as far as a CONNACK. */
  readonly connections: number;
  /** Messages received. */
  readonly messages: number;
  /**
   * Payloads that gave no value of the mapping's type, and values the point model refuses (a
   * string with a lone surrogate): written as bad-quality readings.
   */
  readonly badPayloads: number;
  /** Readings in memory, waiting or being written; never above the configured buffer. */
  readonly buffered: number;
  /** Times the client stopped reading from the broker because the buffer was full. */
  readonly pauses: number;
  /** Subscriptions the broker refused at the latest connection. */
  readonly refusedFilters: readonly string[];
  readonly dropped: Readonly<Record<DropReason, number>>;
  /** Present when the source reads Sparkplug B. */
  readonly sparkplug: SparkplugStats | undefined;
}

export function emptyDropCounts(): Record<DropReason, number> {
  return Object.fromEntries(DROP_REASONS.map((reason) => [reason, 0])) as Record<DropReason, number>;
}

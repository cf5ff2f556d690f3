/**
 * What every sink checks of a write before it writes anything: each entry is a well-formed point
 * or gap, and each continues its topic's sequence. The outcome is where each topic the write
 * touches stands after it, so a sink applies a write whole or not at all.
 */
import { isValidTopic } from '../../../relay/protocol/topics.ts';
import { encodePoint, MAX_REASON_BYTES } from '../../points/point.ts';
import { sinkError } from './sink-errors.ts';
import type { SinkEntry } from './sink.ts';

/** The latest time a JavaScript Date holds (ECMA-262 section 21.4.1.22): sinks show times as dates. */
export const MAX_SOURCE_TIME_MS = 8.64e15;

/**
 * The cursors after `entries`: topic -> its last sequence. Throws AGENT_ERR_SINK_ENTRY for an
 * entry that is neither a point nor a gap, AGENT_ERR_POINT_INVALID for a point outside the model,
 * AGENT_ERR_SINK_ORDER for one out of sequence; `lastSeq` gives the cursors before the write.
 */
export function planCursors(
  entries: readonly SinkEntry[],
  lastSeq: (topic: string) => number,
): Map<string, number> {
  if (!Array.isArray(entries)) throw sinkError('entry', 'a sink write takes an array of entries');
  const after = new Map<string, number>();
  (entries as readonly SinkEntry[]).forEach((entry, index) => {
    checkEntry(entry, index);
    const topic = topicOf(entry);
    const problem = findOrderProblem(entry, after.get(topic) ?? lastSeq(topic));
    if (problem !== undefined) throw sinkError('order', `entry ${index}: ${problem}`);
    after.set(topic, cursorAfter(entry));
  });
  return after;
}

/** Why `entry` cannot follow `lastSeq` of its topic, or undefined when it can. */
export function findOrderProblem(entry: SinkEntry, lastSeq: number): string | undefined {
  const expected = lastSeq + 1;
  if (entry.kind === 'point') {
    if (entry.point.seq === expected) return undefined;
    return `point ${describe(entry.point.seq)} of ${entry.point.topic} does not follow ${lastSeq}`;
  }
  if (entry.from !== expected)
    return `a gap of ${entry.topic} starts at ${describe(entry.from)}, not ${expected}`;
  if (!Number.isSafeInteger(entry.to) || entry.to < entry.from) {
    return `a gap of ${entry.topic} ends at ${describe(entry.to)}, before it starts`;
  }
  return undefined;
}

export function topicOf(entry: SinkEntry): string {
  return entry.kind === 'point' ? entry.point.topic : entry.topic;
}

/** The topic's last sequence once `entry` is held. */
export function cursorAfter(entry: SinkEntry): number {
  return entry.kind === 'point' ? entry.point.seq : entry.to;
}

// Runs once per point a sink takes: no closure made per call (the runtime benchmark found one
// here costing a tenth of the IT agent's CPU under tsx, which names every function it creates).
function checkEntry(entry: SinkEntry, index: number): void {
  if (typeof entry !== 'object' || entry === null) throw malformed(index, 'not an entry');
  if (entry.kind === 'point') {
    const { point } = entry;
    if (typeof point !== 'object' || point === null) throw malformed(index, 'a point entry holds no point');
    if (typeof point.topic !== 'string' || !isValidTopic(point.topic))
      throw malformed(index, 'invalid topic');
    // The point model's one validator: a sink holds nothing a point record could not.
    encodePoint(point);
    if (point.sourceTime > MAX_SOURCE_TIME_MS) throw malformed(index, 'source time beyond the last date');
  } else if (entry.kind === 'gap') {
    if (typeof entry.topic !== 'string' || !isValidTopic(entry.topic))
      throw malformed(index, 'invalid topic');
    const { reason } = entry;
    if (typeof reason !== 'string' || reason.length === 0 || Buffer.byteLength(reason) > MAX_REASON_BYTES) {
      throw malformed(index, `a gap reason is 1 to ${MAX_REASON_BYTES} bytes of text`);
    }
  } else {
    throw malformed(index, 'kind must be point or gap');
  }
}

function malformed(index: number, detail: string): Error {
  return sinkError('entry', `entry ${index}: ${detail}`);
}

/** A number as itself; anything else by its type only (never echo what a caller passed). */
function describe(value: unknown): string {
  return typeof value === 'number' ? String(value) : typeof value;
}

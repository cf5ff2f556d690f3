/**
 * What every sink checks of a write before it writes anything: each entry is a well-formed point,
 * gap or reset, and each continues its topic's sequence (a reset takes it back). The outcome is where each topic the write
 * touches stands after it, so a sink applies a write whole or not at all. An OT agent's log epochs
 * (Sink.noteLogEpochs) are checked here too, once for every sink.
 */
import { isAgentName } from '../../../relay/protocol/identity.ts';
import { isValidTopic } from '../../../relay/protocol/topics.ts';
import { encodePoint, MAX_REASON_BYTES } from '../../points/point.ts';
import { isEpochList, MAX_CURSOR_EPOCHS } from '../../points/resume-cursor.ts';
import { sinkError } from './sink-errors.ts';
import type { SinkEntry } from './sink.ts';

/** The latest time a JavaScript Date holds (ECMA-262 section 21.4.1.22): sinks show times as dates. */
export const MAX_SOURCE_TIME_MS = 8.64e15;

/**
 * The cursors after `entries`: topic -> its last sequence (0 after a reset to the start). Throws
 * AGENT_ERR_SINK_ENTRY for an entry that is not a point, a gap or a reset, AGENT_ERR_POINT_INVALID for a point outside the model,
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
  if (entry.kind === 'reset') {
    if (entry.held !== lastSeq)
      return `a reset of ${entry.topic} says it held ${describe(entry.held)}, not ${lastSeq}`;
    if (!Number.isSafeInteger(entry.from) || entry.from < 1 || entry.from > lastSeq) {
      return `a reset of ${entry.topic} goes on at ${describe(entry.from)}, not back within 1..${lastSeq}`;
    }
    return undefined;
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
  switch (entry.kind) {
    case 'point':
      return entry.point.seq;
    case 'gap':
      return entry.to;
    case 'reset':
      return entry.from - 1;
  }
}

/** Sets a topic's cursor; a topic back at 0 (reset to its start) has none, as one never seen. */
export function setCursor(cursors: Map<string, number>, topic: string, seq: number): void {
  if (seq === 0) cursors.delete(topic);
  else cursors.set(topic, seq);
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
  } else if (entry.kind === 'gap' || entry.kind === 'reset') {
    if (typeof entry.topic !== 'string' || !isValidTopic(entry.topic))
      throw malformed(index, 'invalid topic');
    const { reason } = entry;
    if (typeof reason !== 'string' || reason.length === 0 || Buffer.byteLength(reason) > MAX_REASON_BYTES) {
      throw malformed(index, `a ${entry.kind} reason is 1 to ${MAX_REASON_BYTES} bytes of text`);
    }
  } else {
    throw malformed(index, 'kind must be point, gap or reset');
  }
}

function malformed(index: number, detail: string): Error {
  return sinkError('entry', `entry ${index}: ${detail}`);
}

/** A number as itself; anything else by its type only (never echo what a caller passed). */
function describe(value: unknown): string {
  return typeof value === 'number' ? String(value) : typeof value;
}

/**
 * Whether noting `epochs` for OT agent `agent` (Sink.noteLogEpochs) changes what `origins` (a
 * sink's, as accepted) holds: false when it names them already. Throws AGENT_ERR_SINK_ENTRY for a
 * name or a list an origin cannot carry, or a new agent past `maxAgents` (a sink's topic bound:
 * every OT agent it hears of has a stream in it).
 */
export function isNewOrigin(
  origins: ReadonlyMap<string, readonly string[]>,
  agent: string,
  epochs: readonly string[],
  maxAgents: number,
): boolean {
  if (typeof agent !== 'string' || !isAgentName(agent)) throw sinkError('entry', 'an origin names an agent');
  if (!Array.isArray(epochs) || epochs.length === 0 || !isEpochList(epochs)) {
    throw sinkError(
      'entry',
      `an origin names 1 to ${MAX_CURSOR_EPOCHS} distinct log epochs of 16 hex digits`,
    );
  }
  const held = origins.get(agent);
  if (held !== undefined) return held.join() !== epochs.join();
  if (origins.size >= maxAgents)
    throw sinkError('entry', `the sink keeps origins for at most ${maxAgents} agents`);
  return true;
}

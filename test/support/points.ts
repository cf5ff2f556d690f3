/**
 * Points of the agent tests, both roles: an OT agent's streams, a reading per sequence number that
 * says which point it is, and batches as the relay delivers them to an IT consumer (points, gaps,
 * replay ends, origins and resets).
 */
import type { DeliveredBatch } from '../../agents/it/stream-order.ts';
import { encodePointBatch } from '../../agents/points/batch.ts';
import { encodePoint, type PointReading } from '../../agents/points/point.ts';
import { streamKey } from '../../agents/points/resume-cursor.ts';
import { encodeGap, encodeOrigin, encodeReplayEnd, encodeReset } from '../../agents/points/stream-record.ts';

export const AGENT = 'press-7';
export const TEMP = 'press-7/line1/temp';
export const COUNT = 'press-7/line1/count';
export const LEVEL = 'press-7/line2/level';
const NOW = Date.parse('2026-12-01T10:00:00.000Z');

/** The reading a test sends as `seq`: its value says which point it is. */
export function readingFor(seq: number): PointReading {
  return { value: seq * 1.5, quality: 'good', sourceTime: NOW + seq };
}

export function readingsFor(first: number, count: number): PointReading[] {
  return Array.from({ length: count }, (_, index) => readingFor(first + index));
}

/** Points `first` .. `first + count - 1` of `topic`, as one delivered batch. */
export function points(first: number, count: number, topic = TEMP): DeliveredBatch {
  const records = Array.from({ length: count }, (_, index) => encodePoint(readingFor(first + index)));
  return { topic, seq: first, count, points: encodePointBatch(records) };
}

/** A gap batch as the OT agent's replay sends it: `seq` the first point gone, one gap record. */
export function gap(from: number, to: number, topic = TEMP): DeliveredBatch {
  return { topic, seq: from, count: 1, points: encodePointBatch([encodeGap(to, 'retention')]) };
}

export function replayEnd(more: boolean, topic = 'press-7/_replay', seq = 0): DeliveredBatch {
  return { topic, seq, count: 1, points: encodePointBatch([encodeReplayEnd(more)]) };
}

/** An OT log epoch id of the tests. */
export const EPOCH = '00000000000000e1';

/** A round's origin batch: the OT log's epochs, newest first. */
export function origin(epochs: readonly string[] = [EPOCH], topic = 'press-7/_replay'): DeliveredBatch {
  return { topic, seq: 0, count: 1, points: encodePointBatch([encodeOrigin(epochs)]) };
}

/** A round's batch of resets (topic -> where it goes on), then its origin, as the replay sends them. */
export function resets(
  from: ReadonlyMap<string, number>,
  epochs: readonly string[] = [EPOCH],
  topic = 'press-7/_replay',
): DeliveredBatch {
  const records = [...from].map(([stream, seq]) =>
    encodeReset(streamKey(stream), seq, 'the OT log was re-created'),
  );
  records.push(encodeOrigin(epochs));
  return { topic, seq: 0, count: records.length, points: encodePointBatch(records) };
}

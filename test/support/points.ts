/**
 * Points of the agent tests, both roles: an OT agent's streams, a reading per sequence number that
 * says which point it is, and batches as the relay delivers them to an IT consumer (points, gaps,
 * replay ends).
 */
import type { DeliveredBatch } from '../../agents/it/stream-order.ts';
import { encodePointBatch } from '../../agents/points/batch.ts';
import { encodePoint, type PointReading } from '../../agents/points/point.ts';
import { encodeGap, encodeReplayEnd } from '../../agents/points/stream-record.ts';

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

/**
 * Cutting a run of point records into publish frames: at most MAX_POINTS_PER_FRAME points, and
 * few enough bytes that the frame stays under the relay's limit (its welcome says which) and, on a
 * link paced under the relay's byte rate, under the largest frame its budget lets through.
 */
import { MAX_POINTS_PER_FRAME, MAX_TOPIC_BYTES } from '../../relay/protocol/limits.ts';

/**
 * A publish frame's envelope around its batch: the kind byte, the MessagePack map with its keys,
 * the topic (at most MAX_TOPIC_BYTES), sequence, count, session and the batch's length prefix.
 */
const ENVELOPE_BYTES = MAX_TOPIC_BYTES + 64;
/** A point's length prefix in a batch (agents/points/batch.ts): records here stay below 2^21. */
const LENGTH_PREFIX_BYTES = 3;

/** The largest batch, in bytes, that fits a frame of `maxFrameBytes`. */
export function batchBudget(maxFrameBytes: number): number {
  return maxFrameBytes - ENVELOPE_BYTES;
}

/** At most how many bytes the publish frame of `run` takes on the wire: what the relay counts. */
export function frameBytesOf(run: readonly { readonly byteLength: number }[]): number {
  let bytes = ENVELOPE_BYTES;
  for (const record of run) bytes += record.byteLength + LENGTH_PREFIX_BYTES;
  return bytes;
}

/** Consecutive runs of `records` that each fit one frame, in order. */
export function* frameRuns<T extends { readonly byteLength: number }>(
  records: readonly T[],
  maxFrameBytes: number,
): Generator<readonly T[]> {
  const budget = batchBudget(maxFrameBytes);
  let start = 0;
  let bytes = 0;
  for (let index = 0; index < records.length; index++) {
    const size = (records[index]?.byteLength ?? 0) + LENGTH_PREFIX_BYTES;
    if (index > start && (index - start === MAX_POINTS_PER_FRAME || bytes + size > budget)) {
      yield records.slice(start, index);
      start = index;
      bytes = 0;
    }
    bytes += size;
  }
  if (start < records.length) yield records.slice(start);
}

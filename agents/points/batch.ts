/**
 * A batch of points as one publish or deliver frame carries it: the points of one stream, each an
 * opaque record (the point encoding itself is the agents' business), laid end to end, each after
 * its length as an unsigned LEB128 varint. The relay never looks inside: it forwards the batch as
 * one byte range and counts it by the frame's `count`, so a frame of 128 points costs it what a
 * frame of one point costs, plus the copy.
 */
import { DmzError } from '../../relay/protocol/errors.ts';
import { MAX_FRAME_BYTES, MAX_POINTS_PER_FRAME } from '../../relay/protocol/limits.ts';

/** Seven payload bits per varint byte; the high bit says another byte follows. */
const VARINT_PAYLOAD_BITS = 7;
const VARINT_CONTINUE = 0x80;
/** A point's length fits a frame: 3 varint bytes hold up to 2 MiB, above MAX_FRAME_BYTES. */
const MAX_VARINT_BYTES = 3;

/** The batch for `points`, in order. */
export function encodePointBatch(points: readonly Uint8Array[]): Uint8Array {
  if (points.length === 0 || points.length > MAX_POINTS_PER_FRAME) {
    throw new DmzError('AGENT_ERR_POINT_BATCH', `a batch holds 1 to ${MAX_POINTS_PER_FRAME} points`);
  }
  let size = 0;
  for (const point of points) size += varintLength(point.byteLength) + point.byteLength;
  const batch = new Uint8Array(size);
  let offset = 0;
  for (const point of points) {
    let length = point.byteLength;
    while (length >= VARINT_CONTINUE) {
      batch[offset++] = (length & 0x7f) | VARINT_CONTINUE;
      length >>>= VARINT_PAYLOAD_BITS;
    }
    batch[offset++] = length;
    batch.set(point, offset);
    offset += point.byteLength;
  }
  return batch;
}

/**
 * The `count` points of a batch, as views into it (no copy). Throws AGENT_ERR_POINT_BATCH unless
 * the batch holds exactly `count` well-formed records and nothing after them.
 */
export function decodePointBatch(batch: Uint8Array, count: number): Uint8Array[] {
  const points: Uint8Array[] = [];
  let offset = 0;
  while (offset < batch.byteLength) {
    if (points.length === count) throw invalid(`bytes after the last of ${count} points`);
    let length = 0;
    let shift = 0;
    for (let read = 0; ; read++) {
      const byte = batch[offset++];
      if (byte === undefined || read === MAX_VARINT_BYTES) throw invalid('a point length is cut short');
      length += (byte & 0x7f) * 2 ** shift;
      shift += VARINT_PAYLOAD_BITS;
      if ((byte & VARINT_CONTINUE) === 0) break;
    }
    if (length > batch.byteLength - offset) throw invalid('a point runs past the end of the batch');
    points.push(batch.subarray(offset, offset + length));
    offset += length;
  }
  if (points.length !== count) throw invalid(`${points.length} points where the frame says ${count}`);
  return points;
}

function varintLength(value: number): number {
  if (value > MAX_FRAME_BYTES) throw new DmzError('AGENT_ERR_POINT_BATCH', 'a point larger than a frame');
  let bytes = 1;
  for (let rest = value >>> VARINT_PAYLOAD_BITS; rest > 0; rest >>>= VARINT_PAYLOAD_BITS) bytes++;
  return bytes;
}

function invalid(detail: string): DmzError {
  return new DmzError('AGENT_ERR_POINT_BATCH', `points batch does not decode: ${detail}`);
}

/**
 * The frames a segment holds after its header. An append of n records to one stream is one
 * records frame (the stream id and first sequence number once, then each record after its
 * length); a segment declares each stream it holds once, in a definition frame, before the
 * stream's first records frame, so a record carries a 4-byte stream id, never its topic.
 *
 *   offset  size  field (little-endian)
 *        0     4  CRC-32 (ISO-HDLC, zlib's) of bytes 4 .. end of frame
 *        4     4  body bytes
 *        8     1  kind: 1 records, 2 stream definition
 *        9     4  stream id
 *       13     8  first sequence number (records; 0 for a definition)
 *       21     2  record count (records; 0 for a definition)
 *       23     8  append time, ms since the epoch (float64)
 *       31     -  body: count x (u16 length, bytes) | the stream's topic (UTF-8)
 *
 * A frame is whole or it is not there: parseFrame answers INCOMPLETE for a frame cut short and
 * INVALID for one that does not verify, and a reopen truncates the active segment at either.
 */
import { crc32 } from 'node:zlib';
import { MAX_TOPIC_BYTES } from '../../../relay/protocol/limits.ts';
import { isValidTopic } from '../../../relay/protocol/topics.ts';
import { MAX_APPEND_BYTES, MAX_RECORDS_PER_APPEND, MAX_SEQ } from './limits.ts';

export const FRAME_KIND = { records: 1, streamDefinition: 2 } as const;
export type FrameKind = (typeof FRAME_KIND)[keyof typeof FRAME_KIND];

export const FRAME_HEADER_BYTES = 31;
const RECORD_LENGTH_BYTES = 2;
/** The largest body an append can produce; a length field above it is damage, not data. */
export const MAX_FRAME_BODY_BYTES = MAX_RECORDS_PER_APPEND * RECORD_LENGTH_BYTES + MAX_APPEND_BYTES;
const UINT32 = 2 ** 32;

export const INCOMPLETE = 'incomplete';
export const INVALID = 'invalid';

/** A verified frame; `body` is a view into the buffer it was parsed from. */
export interface Frame {
  readonly kind: FrameKind;
  readonly streamId: number;
  readonly firstSeq: number;
  readonly count: number;
  readonly appendedAtMs: number;
  readonly frameBytes: number;
  readonly body: Buffer;
}

export function recordsFrameBytes(records: readonly Uint8Array[]): number {
  let bytes = FRAME_HEADER_BYTES + records.length * RECORD_LENGTH_BYTES;
  for (let index = 0; index < records.length; index++) bytes += (records[index] as Uint8Array).byteLength;
  return bytes;
}

export function encodeRecordsFrame(
  streamId: number,
  firstSeq: number,
  records: readonly Uint8Array[],
  appendedAtMs: number,
): Buffer {
  const frame = Buffer.allocUnsafe(recordsFrameBytes(records));
  writeHeader(frame, FRAME_KIND.records, streamId, firstSeq, records.length, appendedAtMs);
  let offset = FRAME_HEADER_BYTES;
  // The hot loop of an append: plain byte stores and set(), about twice as fast as writeUInt16LE.
  for (let index = 0; index < records.length; index++) {
    const record = records[index] as Uint8Array;
    const length = record.byteLength;
    frame[offset] = length & 0xff;
    frame[offset + 1] = length >>> 8;
    frame.set(record, offset + RECORD_LENGTH_BYTES);
    offset += RECORD_LENGTH_BYTES + length;
  }
  return seal(frame);
}

export function encodeDefinitionFrame(streamId: number, name: string, appendedAtMs: number): Buffer {
  const nameBytes = Buffer.from(name, 'utf8');
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + nameBytes.byteLength);
  writeHeader(frame, FRAME_KIND.streamDefinition, streamId, 0, 0, appendedAtMs);
  frame.set(nameBytes, FRAME_HEADER_BYTES);
  return seal(frame);
}

function writeHeader(
  frame: Buffer,
  kind: FrameKind,
  streamId: number,
  firstSeq: number,
  count: number,
  appendedAtMs: number,
): void {
  frame.writeUInt32LE(frame.byteLength - FRAME_HEADER_BYTES, 4);
  frame.writeUInt8(kind, 8);
  frame.writeUInt32LE(streamId, 9);
  writeSeq(frame, firstSeq, 13);
  frame.writeUInt16LE(count, 21);
  frame.writeDoubleLE(appendedAtMs, 23);
}

function seal(frame: Buffer): Buffer {
  frame.writeUInt32LE(crc32(frame.subarray(4)), 0);
  return frame;
}

/** The size of the frame starting at `offset` as its header declares it, once the header is there. */
export function declaredFrameBytes(buffer: Buffer, offset: number, end: number): number | undefined {
  if (end - offset < FRAME_HEADER_BYTES) return undefined;
  return FRAME_HEADER_BYTES + buffer.readUInt32LE(offset + 4);
}

/** Parses and verifies the frame at `offset`, reading no further than `end`. */
export function parseFrame(
  buffer: Buffer,
  offset: number,
  end: number,
): Frame | typeof INCOMPLETE | typeof INVALID {
  if (end - offset < FRAME_HEADER_BYTES) return INCOMPLETE;
  const bodyBytes = buffer.readUInt32LE(offset + 4);
  // Checked before waiting for the rest: a torn length must not make a reader fetch gigabytes.
  if (bodyBytes > MAX_FRAME_BODY_BYTES) return INVALID;
  const frameBytes = FRAME_HEADER_BYTES + bodyBytes;
  if (end - offset < frameBytes) return INCOMPLETE;
  if (crc32(buffer.subarray(offset + 4, offset + frameBytes)) !== buffer.readUInt32LE(offset)) return INVALID;
  const kind = buffer.readUInt8(offset + 8);
  const firstSeq = readSeq(buffer, offset + 13);
  const count = buffer.readUInt16LE(offset + 21);
  const body = buffer.subarray(offset + FRAME_HEADER_BYTES, offset + frameBytes);
  const frame: Frame = {
    kind: kind === FRAME_KIND.records ? FRAME_KIND.records : FRAME_KIND.streamDefinition,
    streamId: buffer.readUInt32LE(offset + 9),
    firstSeq,
    count,
    appendedAtMs: buffer.readDoubleLE(offset + 23),
    frameBytes,
    body,
  };
  switch (kind) {
    case FRAME_KIND.records:
      return isValidRecordsFrame(frame) ? frame : INVALID;
    case FRAME_KIND.streamDefinition:
      return isValidDefinitionFrame(frame) ? frame : INVALID;
    default:
      return INVALID;
  }
}

function isValidRecordsFrame(frame: Frame): boolean {
  if (frame.count === 0 || frame.count > MAX_RECORDS_PER_APPEND) return false;
  if (frame.firstSeq < 1 || frame.firstSeq + frame.count - 1 > MAX_SEQ) return false;
  let offset = 0;
  for (let index = 0; index < frame.count; index++) {
    if (frame.body.byteLength - offset < RECORD_LENGTH_BYTES) return false;
    const length = frame.body.readUInt16LE(offset);
    offset += RECORD_LENGTH_BYTES + length;
    if (length === 0 || offset > frame.body.byteLength) return false;
  }
  return offset === frame.body.byteLength;
}

function isValidDefinitionFrame(frame: Frame): boolean {
  if (frame.count !== 0 || frame.firstSeq !== 0) return false;
  if (frame.body.byteLength === 0 || frame.body.byteLength > MAX_TOPIC_BYTES) return false;
  return isValidTopic(definedName(frame));
}

export function definedName(frame: Frame): string {
  return frame.body.toString('utf8');
}

/**
 * Calls `visit` with each record of a records frame and its sequence number, in order, until it
 * returns false. `bytes` is a view into the frame's buffer: copy what you keep.
 */
export function forEachRecord(frame: Frame, visit: (seq: number, bytes: Buffer) => boolean): void {
  let offset = 0;
  for (let index = 0; index < frame.count; index++) {
    const length = frame.body.readUInt16LE(offset);
    offset += RECORD_LENGTH_BYTES;
    if (!visit(frame.firstSeq + index, frame.body.subarray(offset, offset + length))) return;
    offset += length;
  }
}

/** A sequence number as an unsigned 64-bit little-endian integer (it stays below 2^53). */
export function writeSeq(buffer: Buffer, seq: number, offset: number): void {
  buffer.writeUInt32LE(seq % UINT32, offset);
  buffer.writeUInt32LE(Math.floor(seq / UINT32), offset + 4);
}

export function readSeq(buffer: Buffer, offset: number): number {
  return buffer.readUInt32LE(offset) + buffer.readUInt32LE(offset + 4) * UINT32;
}

/**
 * A segment file: a fixed header, then frames (frame.ts), appended and never rewritten. Segments
 * are numbered in the order they were created; `0000000042.seg` is followed by `0000000043.seg`.
 *
 *   offset  size  field (little-endian)
 *        0     8  magic "DMZSEG01" (format version 1)
 *        8     4  segment number (catches a file renamed into the wrong place)
 *       12     8  creation time, ms since the epoch (float64)
 *       20     4  CRC-32 of bytes 0..20
 */
import type { FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import { INCOMPLETE, INVALID, declaredFrameBytes, parseFrame, type Frame } from './frame.ts';
import { SCAN_CHUNK_BYTES } from './limits.ts';

const SEGMENT_MAGIC = Buffer.from('DMZSEG01', 'latin1');
export const SEGMENT_HEADER_BYTES = 24;
/** Ten digits hold every 32-bit segment number and sort like numbers. */
const SEGMENT_NUMBER_DIGITS = 10;
const SEGMENT_NAME = /^(\d{10})\.seg$/;
const INDEX_NAME = /^(\d{10})\.idx$/;

export function segmentFileName(segmentNumber: number): string {
  return `${String(segmentNumber).padStart(SEGMENT_NUMBER_DIGITS, '0')}.seg`;
}

export function indexFileName(segmentNumber: number): string {
  return `${String(segmentNumber).padStart(SEGMENT_NUMBER_DIGITS, '0')}.idx`;
}

/** The segment number a file name carries, and whether it is the segment or its index. */
export function parseLogFileName(name: string): { number: number; kind: 'segment' | 'index' } | undefined {
  const segment = SEGMENT_NAME.exec(name);
  if (segment?.[1] !== undefined) return { number: Number(segment[1]), kind: 'segment' };
  const index = INDEX_NAME.exec(name);
  if (index?.[1] !== undefined) return { number: Number(index[1]), kind: 'index' };
  return undefined;
}

export function encodeSegmentHeader(segmentNumber: number, createdAtMs: number): Buffer {
  const header = Buffer.alloc(SEGMENT_HEADER_BYTES);
  SEGMENT_MAGIC.copy(header, 0);
  header.writeUInt32LE(segmentNumber, 8);
  header.writeDoubleLE(createdAtMs, 12);
  header.writeUInt32LE(crc32(header.subarray(0, 20)), 20);
  return header;
}

export function isSegmentHeader(header: Buffer, segmentNumber: number): boolean {
  return (
    header.byteLength >= SEGMENT_HEADER_BYTES &&
    header.subarray(0, SEGMENT_MAGIC.byteLength).equals(SEGMENT_MAGIC) &&
    header.readUInt32LE(8) === segmentNumber &&
    header.readUInt32LE(20) === crc32(header.subarray(0, 20))
  );
}

/** Why a walk over frames ended, and where. */
export interface FrameWalk {
  /** The offset after the last frame visited (or where a damaged frame starts). */
  readonly end: number;
  /** `end`: reached the end given; `stopped`: the visitor asked to stop; `damaged`: a frame was cut short or did not verify. */
  readonly outcome: 'end' | 'stopped' | 'damaged';
}

/**
 * Visits the frames of `handle` from `start` (a frame boundary) to `end`, reading a chunk at a
 * time, until `visit` returns false. The frame's body is a view into a buffer reused for the next
 * chunk: copy what you keep.
 */
export async function walkFrames(
  handle: FileHandle,
  start: number,
  end: number,
  visit: (frame: Frame, offset: number) => boolean,
): Promise<FrameWalk> {
  let buffer = Buffer.allocUnsafe(SCAN_CHUNK_BYTES);
  let position = start;
  while (position < end) {
    const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.byteLength, end - position), position);
    let offset = 0;
    for (;;) {
      const frame = parseFrame(buffer, offset, bytesRead);
      if (frame === INVALID) return { end: position + offset, outcome: 'damaged' };
      if (frame === INCOMPLETE) break;
      if (!visit(frame, position + offset))
        return { end: position + offset + frame.frameBytes, outcome: 'stopped' };
      offset += frame.frameBytes;
    }
    const atEnd = position + bytesRead >= end;
    if (offset === 0) {
      // Not even one frame fits what was read: the file ends inside it, or it is larger than the buffer.
      const needed = declaredFrameBytes(buffer, 0, bytesRead);
      if (
        atEnd ||
        bytesRead === 0 ||
        needed === undefined ||
        needed <= buffer.byteLength ||
        position + needed > end
      ) {
        return { end: position, outcome: 'damaged' };
      }
      buffer = Buffer.allocUnsafe(needed);
      continue;
    }
    if (atEnd && offset < bytesRead) return { end: position + offset, outcome: 'damaged' };
    position += offset;
  }
  return { end: position, outcome: 'end' };
}

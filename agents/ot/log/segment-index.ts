/**
 * A sealed segment's index file (`0000000042.idx`), written once when the segment is sealed, so a
 * reopen learns what a segment holds without reading it. The summary (which streams, their
 * sequence ranges) is read at open; the entries (sparse offsets) only when a read needs them.
 *
 *   header (56 bytes, little-endian)
 *        0     8  magic "DMZIDX01"
 *        8     4  segment number
 *       12     4  segment bytes when sealed
 *       16     8  first append time, ms (float64)
 *       24     8  last append time, ms (float64)
 *       32     4  stream count
 *       36     4  summary bytes
 *       40     4  entry count
 *       44     4  CRC-32 of the summary
 *       48     4  CRC-32 of the entries
 *       52     4  CRC-32 of bytes 0..52
 *   summary, per stream: u32 id, u64 first seq, u64 last seq, u32 first offset,
 *                        u32 first entry, u32 entry count, u16 name bytes, name (UTF-8)
 *   entries, per entry:  u64 first seq of a records frame, u32 its offset
 */
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { isValidTopic } from '../../../relay/protocol/topics.ts';
import { readSeq, writeSeq } from './frame.ts';
import { logError } from './log-errors.ts';
import type { Segment, StreamEntries } from './segment.ts';

const INDEX_MAGIC = Buffer.from('DMZIDX01', 'latin1');
const HEADER_BYTES = 56;
const STREAM_FIXED_BYTES = 34;
const ENTRY_BYTES = 12;

/** What the index says about its segment and each stream in it. */
export interface IndexSummary {
  readonly segmentBytes: number;
  readonly firstAppendMs: number | undefined;
  readonly lastAppendMs: number | undefined;
  readonly streams: readonly IndexedStream[];
  readonly indexBytes: number;
}

export interface IndexedStream {
  readonly id: number;
  readonly name: string;
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly firstOffset: number;
}

export function encodeSegmentIndex(segment: Segment, nameOf: (streamId: number) => string): Buffer {
  const entries = segment.entries ?? new Map<number, StreamEntries>();
  const names = new Map<number, Buffer>();
  let summaryBytes = 0;
  let entryCount = 0;
  for (const id of segment.streams.keys()) {
    const name = Buffer.from(nameOf(id), 'utf8');
    names.set(id, name);
    summaryBytes += STREAM_FIXED_BYTES + name.byteLength;
    entryCount += entries.get(id)?.seqs.length ?? 0;
  }
  const file = Buffer.alloc(HEADER_BYTES + summaryBytes + entryCount * ENTRY_BYTES);
  let offset = HEADER_BYTES;
  let entry = 0;
  let entryOffset = HEADER_BYTES + summaryBytes;
  for (const [id, stream] of segment.streams) {
    const name = names.get(id) ?? Buffer.alloc(0);
    const streamEntries = entries.get(id) ?? { seqs: [], offsets: [] };
    file.writeUInt32LE(id, offset);
    writeSeq(file, stream.firstSeq, offset + 4);
    writeSeq(file, stream.lastSeq, offset + 12);
    file.writeUInt32LE(stream.firstOffset, offset + 20);
    file.writeUInt32LE(entry, offset + 24);
    file.writeUInt32LE(streamEntries.seqs.length, offset + 28);
    file.writeUInt16LE(name.byteLength, offset + 32);
    name.copy(file, offset + STREAM_FIXED_BYTES);
    offset += STREAM_FIXED_BYTES + name.byteLength;
    for (let index = 0; index < streamEntries.seqs.length; index++) {
      writeSeq(file, streamEntries.seqs[index] ?? 0, entryOffset);
      file.writeUInt32LE(streamEntries.offsets[index] ?? 0, entryOffset + 8);
      entryOffset += ENTRY_BYTES;
    }
    entry += streamEntries.seqs.length;
  }
  INDEX_MAGIC.copy(file, 0);
  file.writeUInt32LE(segment.number, 8);
  file.writeUInt32LE(segment.size, 12);
  file.writeDoubleLE(segment.firstAppendMs ?? Number.NaN, 16);
  file.writeDoubleLE(segment.lastAppendMs ?? Number.NaN, 24);
  file.writeUInt32LE(segment.streams.size, 32);
  file.writeUInt32LE(summaryBytes, 36);
  file.writeUInt32LE(entryCount, 40);
  file.writeUInt32LE(crc32(file.subarray(HEADER_BYTES, HEADER_BYTES + summaryBytes)), 44);
  file.writeUInt32LE(crc32(file.subarray(HEADER_BYTES + summaryBytes)), 48);
  file.writeUInt32LE(crc32(file.subarray(0, 52)), 52);
  return file;
}

/**
 * The summary of segment `segmentNumber`'s index, reading only the header and summary; undefined
 * when the index is missing or does not verify (the caller then scans the segment itself).
 */
export async function readIndexSummary(dir: string, segment: Segment): Promise<IndexSummary | undefined> {
  let handle;
  try {
    handle = await open(join(dir, segment.indexFileName), 'r');
  } catch {
    return undefined;
  }
  try {
    const indexBytes = (await handle.stat()).size;
    const header = Buffer.alloc(HEADER_BYTES);
    const { bytesRead } = await handle.read(header, 0, HEADER_BYTES, 0);
    if (bytesRead !== HEADER_BYTES || !isIndexHeader(header, segment.number)) return undefined;
    const summaryBytes = header.readUInt32LE(36);
    const entryCount = header.readUInt32LE(40);
    if (indexBytes !== HEADER_BYTES + summaryBytes + entryCount * ENTRY_BYTES) return undefined;
    const summary = Buffer.alloc(summaryBytes);
    await handle.read(summary, 0, summaryBytes, HEADER_BYTES);
    if (crc32(summary) !== header.readUInt32LE(44)) return undefined;
    const streams = parseSummary(summary, header.readUInt32LE(32));
    if (streams === undefined) return undefined;
    return {
      segmentBytes: header.readUInt32LE(12),
      firstAppendMs: finiteOrUndefined(header.readDoubleLE(16)),
      lastAppendMs: finiteOrUndefined(header.readDoubleLE(24)),
      streams,
      indexBytes,
    };
  } finally {
    await handle.close();
  }
}

/** The sparse entries of a sealed segment, per stream. Throws when its index no longer verifies. */
export async function readIndexEntries(dir: string, segment: Segment): Promise<Map<number, StreamEntries>> {
  const file = await readFile(join(dir, segment.indexFileName));
  const damaged = (): Error => logError('corrupt', `the index of segment ${segment.number} does not verify`);
  if (!isIndexHeader(file, segment.number)) throw damaged();
  const summaryBytes = file.readUInt32LE(36);
  const summaryEnd = HEADER_BYTES + summaryBytes;
  if (crc32(file.subarray(HEADER_BYTES, summaryEnd)) !== file.readUInt32LE(44)) throw damaged();
  if (crc32(file.subarray(summaryEnd)) !== file.readUInt32LE(48)) throw damaged();
  const entries = new Map<number, StreamEntries>();
  let offset = HEADER_BYTES;
  for (let stream = 0; stream < file.readUInt32LE(32); stream++) {
    const id = file.readUInt32LE(offset);
    const first = file.readUInt32LE(offset + 24);
    const count = file.readUInt32LE(offset + 28);
    const streamEntries: StreamEntries = { seqs: [], offsets: [] };
    for (let index = first; index < first + count; index++) {
      const at = summaryEnd + index * ENTRY_BYTES;
      if (at + ENTRY_BYTES > file.byteLength) throw damaged();
      streamEntries.seqs.push(readSeq(file, at));
      streamEntries.offsets.push(file.readUInt32LE(at + 8));
    }
    entries.set(id, streamEntries);
    offset += STREAM_FIXED_BYTES + file.readUInt16LE(offset + 32);
  }
  return entries;
}

function isIndexHeader(header: Buffer, segmentNumber: number): boolean {
  return (
    header.byteLength >= HEADER_BYTES &&
    header.subarray(0, INDEX_MAGIC.byteLength).equals(INDEX_MAGIC) &&
    header.readUInt32LE(8) === segmentNumber &&
    header.readUInt32LE(52) === crc32(header.subarray(0, 52))
  );
}

function parseSummary(summary: Buffer, streamCount: number): IndexedStream[] | undefined {
  const streams: IndexedStream[] = [];
  let offset = 0;
  for (let index = 0; index < streamCount; index++) {
    if (offset + STREAM_FIXED_BYTES > summary.byteLength) return undefined;
    const nameBytes = summary.readUInt16LE(offset + 32);
    const nameEnd = offset + STREAM_FIXED_BYTES + nameBytes;
    if (nameEnd > summary.byteLength) return undefined;
    const name = summary.toString('utf8', offset + STREAM_FIXED_BYTES, nameEnd);
    if (!isValidTopic(name)) return undefined;
    streams.push({
      id: summary.readUInt32LE(offset),
      name,
      firstSeq: readSeq(summary, offset + 4),
      lastSeq: readSeq(summary, offset + 12),
      firstOffset: summary.readUInt32LE(offset + 20),
    });
    offset = nameEnd;
  }
  return offset === summary.byteLength ? streams : undefined;
}

function finiteOrUndefined(value: number): number | undefined {
  return Number.isFinite(value) ? value : undefined;
}

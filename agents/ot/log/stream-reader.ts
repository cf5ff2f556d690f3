/**
 * Reading one stream for replay: the records from a sequence number on, in order, or first an
 * explicit gap when retention has deleted the ones asked for. Reads see durable records only, hold
 * no lock (segments are immutable below their synced size) and await a chunk at a time, so a long
 * replay and live appends share the event loop.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { FRAME_KIND, forEachRecord, type Frame } from './frame.ts';
import { DmzError } from '../../../relay/protocol/errors.ts';
import { MAX_READ_BYTES } from './limits.ts';
import { logError, storageFailure } from './log-errors.ts';
import { walkFrames } from './segment-file.ts';
import type { SegmentSet } from './segment-set.ts';
import { startOffset, type Segment, type SegmentStream } from './segment.ts';
import type { StreamState } from './stream-table.ts';

export interface LogRecord {
  readonly seq: number;
  readonly bytes: Uint8Array;
}

/** Records that existed but are gone: `from` to `to`, both inclusive. */
export interface LogGap {
  readonly from: number;
  readonly to: number;
  readonly reason: 'retention';
}

export interface ReadResult {
  /** Set when records before the first one returned are gone; never left out silently. */
  readonly gap: LogGap | undefined;
  readonly records: readonly LogRecord[];
  /** Where the next read continues. */
  readonly nextSeq: number;
}

/** A read that meets a segment retention just deleted starts over this often, then gives up. */
const MAX_READ_ATTEMPTS = 3;

export async function readStream(
  dir: string,
  segments: SegmentSet,
  stream: StreamState,
  fromSeq: number,
  maxRecords: number,
): Promise<ReadResult> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await readOnce(dir, segments, stream, fromSeq, maxRecords);
    } catch (error) {
      if (error instanceof DmzError) throw error;
      // Retention deleted a segment between listing and opening it: the next listing says so.
      const deleted = (error as NodeJS.ErrnoException).code === 'ENOENT';
      if (!deleted || attempt === MAX_READ_ATTEMPTS) throw storageFailure('reading records', error);
    }
  }
}

/** The oldest sequence number of `stream` a read can still return. */
export function firstRetainedSeq(segments: SegmentSet, stream: StreamState): number {
  return Math.min(segments.firstSeqOf(stream.id) ?? Number.POSITIVE_INFINITY, stream.durableSeq + 1);
}

async function readOnce(
  dir: string,
  segments: SegmentSet,
  stream: StreamState,
  fromSeq: number,
  maxRecords: number,
): Promise<ReadResult> {
  const lastSeq = stream.durableSeq;
  const firstSeq = firstRetainedSeq(segments, stream);
  const gap: LogGap | undefined =
    fromSeq < firstSeq ? { from: fromSeq, to: firstSeq - 1, reason: 'retention' } : undefined;
  const collected: Collected = { records: [], bytes: 0, nextSeq: Math.max(fromSeq, firstSeq) };
  for (const segment of segments.list()) {
    const held = segment.streams.get(stream.id);
    if (held === undefined || held.lastSeq < collected.nextSeq || held.firstSeq > lastSeq) continue;
    await readSegment(dir, segments, segment, stream.id, held, lastSeq, maxRecords, collected);
    if (isFull(collected, maxRecords) || collected.nextSeq > lastSeq) break;
  }
  return { gap, records: collected.records, nextSeq: collected.nextSeq };
}

interface Collected {
  readonly records: LogRecord[];
  bytes: number;
  nextSeq: number;
}

function isFull(collected: Collected, maxRecords: number): boolean {
  return collected.records.length >= maxRecords || collected.bytes >= MAX_READ_BYTES;
}

async function readSegment(
  dir: string,
  segments: SegmentSet,
  segment: Segment,
  streamId: number,
  held: SegmentStream,
  lastSeq: number,
  maxRecords: number,
  collected: Collected,
): Promise<void> {
  const entries = (await segments.entriesOf(segment)).get(streamId);
  const from = startOffset(held, entries, collected.nextSeq);
  const end = segment.sealed ? segment.size : segment.syncedSize;
  const handle: FileHandle = await open(join(dir, segment.fileName), 'r');
  try {
    const walk = await walkStream(handle, from, end, streamId, held.lastSeq, lastSeq, maxRecords, collected);
    if (walk === 'damaged')
      throw logError('corrupt', `segment ${segment.number} is damaged where a read needs it`);
  } finally {
    await handle.close();
  }
}

async function walkStream(
  handle: FileHandle,
  from: number,
  end: number,
  streamId: number,
  lastInSegment: number,
  lastSeq: number,
  maxRecords: number,
  collected: Collected,
): Promise<'done' | 'damaged'> {
  const visit = (frame: Frame): boolean => {
    if (frame.kind !== FRAME_KIND.records || frame.streamId !== streamId) return true;
    if (frame.firstSeq + frame.count <= collected.nextSeq) return true;
    let more = true;
    forEachRecord(frame, (seq, bytes) => {
      if (seq < collected.nextSeq) return true;
      if (seq > lastSeq) return (more = false);
      // A copy: the walk reuses its buffer, and a record must not pin a whole chunk in memory.
      collected.records.push({ seq, bytes: new Uint8Array(bytes) });
      collected.bytes += bytes.byteLength;
      collected.nextSeq = seq + 1;
      if (isFull(collected, maxRecords)) more = false;
      return more;
    });
    return more && collected.nextSeq <= Math.min(lastInSegment, lastSeq);
  };
  const walk = await walkFrames(handle, from, end, visit);
  return walk.outcome === 'damaged' ? 'damaged' : 'done';
}

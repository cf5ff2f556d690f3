/**
 * Reading the log for replay: the records of any number of streams, each from a sequence number on,
 * in one pass over the log in log order, with an explicit gap first for a stream whose records
 * retention deleted. A pass starts at the lowest offset any stream needs (the sparse index says
 * where), skips the segments that hold nothing asked for, walks each frame once and stops at a
 * record or byte bound, saying where the next pass continues: its cost is the bytes of the range
 * it covers, not streams x range, however finely the streams are interleaved.
 *
 * Reads see durable records only, hold no lock (segments are immutable below their synced size)
 * and await a chunk at a time, so a long replay and live appends share the event loop.
 */
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { DmzError } from '../../../relay/protocol/errors.ts';
import { FRAME_KIND, forEachRecord, type Frame } from './frame.ts';
import { logError, storageFailure } from './log-errors.ts';
import { walkFrames } from './segment-file.ts';
import type { SegmentSet } from './segment-set.ts';
import { startOffset, type Segment, type SegmentStream } from './segment.ts';
import type { StreamState, StreamTable } from './stream-table.ts';

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

/** A frame boundary in the log: a segment (by number) and an offset in it. */
export interface LogPosition {
  readonly segment: number;
  readonly offset: number;
}

/**
 * Where a read of many streams continues: each stream's next sequence number, and the position in
 * the log before which nothing of theirs is left to read. Made by readStreams: pass it back as it
 * is (a position with other sequence numbers could skip records).
 */
export interface StreamsCursor {
  readonly seqs: ReadonlyMap<string, number>;
  readonly position: LogPosition | undefined;
}

export interface StreamsReadResult {
  /** The streams that have a gap or records, in the order they were asked for. */
  readonly streams: ReadonlyMap<string, ReadResult>;
  /** Set when a bound stopped the read before every stream reached its last durable record. */
  readonly more: boolean;
  readonly next: StreamsCursor;
}

export interface ReadBounds {
  readonly maxRecords: number;
  /** Record bytes after which the read stops (it always returns at least one record). */
  readonly maxBytes: number;
}

/** The work reads did: frames walked (each parsed and CRC-checked) and their bytes. */
export interface ReadCounters {
  framesScanned: number;
  bytesScanned: number;
}

/** What a read works on: the log's files, what it knows of them, and where its work is counted. */
export interface ReadSource {
  readonly dir: string;
  readonly segments: SegmentSet;
  readonly table: StreamTable;
  readonly counters: ReadCounters;
}

/** A read that meets a segment retention just deleted starts over this often, then gives up. */
const MAX_READ_ATTEMPTS = 3;

/** The records of every stream in `from` from its sequence number on, in one pass. */
export async function readStreams(
  source: ReadSource,
  from: StreamsCursor,
  bounds: ReadBounds,
): Promise<StreamsReadResult> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await readOnce(source, from, bounds);
    } catch (error) {
      if (error instanceof DmzError) throw error;
      // Retention deleted a segment between listing and opening it: the next listing says so.
      const deleted = (error as NodeJS.ErrnoException).code === 'ENOENT';
      if (!deleted || attempt === MAX_READ_ATTEMPTS) throw storageFailure('reading records', error);
    }
  }
}

/** One stream's records from `fromSeq` on: a read of many streams, of one. */
export async function readStream(
  source: ReadSource,
  stream: string,
  fromSeq: number,
  bounds: ReadBounds,
): Promise<ReadResult> {
  const result = await readStreams(
    source,
    { seqs: new Map([[stream, fromSeq]]), position: undefined },
    bounds,
  );
  return result.streams.get(stream) ?? { gap: undefined, records: [], nextSeq: fromSeq };
}

/** The oldest sequence number of `stream` a read can still return. */
export function firstRetainedSeq(segments: SegmentSet, stream: StreamState): number {
  return Math.min(segments.firstSeqOf(stream.id) ?? Number.POSITIVE_INFINITY, stream.durableSeq + 1);
}

/** A stream a read asks for, and what the read has collected of it. */
interface Wanted {
  readonly id: number;
  /** The stream's last durable sequence number when the read began: nothing past it is returned. */
  readonly lastSeq: number;
  readonly gap: LogGap | undefined;
  readonly records: LogRecord[];
  nextSeq: number;
}

/** A wanted stream in one segment: up to which sequence number that segment holds it. */
interface InSegment {
  readonly wanted: Wanted;
  readonly held: SegmentStream;
  readonly lastSeq: number;
}

interface Pass {
  readonly bounds: ReadBounds;
  readonly counters: ReadCounters;
  records: number;
  bytes: number;
  /** Set where a bound stopped the walk: the frame it was in. */
  stoppedAt: LogPosition | undefined;
}

async function readOnce(
  source: ReadSource,
  from: StreamsCursor,
  bounds: ReadBounds,
): Promise<StreamsReadResult> {
  // One synchronous snapshot: the writer moves a segment's synced size and its streams' durable
  // sequence numbers together, so below these ends every frame holds records at or before the
  // lastSeqs taken here, and a later read may start where this one's walk ended.
  const durable = source.segments.list().map((segment) => ({
    segment,
    end: segment.sealed ? segment.size : segment.syncedSize,
  }));
  const wanted = new Map<string, Wanted>();
  const byId = new Map<number, Wanted>();
  for (const [name, fromSeq] of from.seqs) {
    const stream = source.table.byName(name);
    if (stream === undefined) continue;
    const firstSeq = firstRetainedSeq(source.segments, stream);
    const gap: LogGap | undefined =
      fromSeq < firstSeq ? { from: fromSeq, to: firstSeq - 1, reason: 'retention' } : undefined;
    const entry = {
      id: stream.id,
      lastSeq: stream.durableSeq,
      gap,
      records: [],
      nextSeq: Math.max(fromSeq, firstSeq),
    };
    wanted.set(name, entry);
    byId.set(stream.id, entry);
  }

  const pass: Pass = { bounds, counters: source.counters, records: 0, bytes: 0, stoppedAt: undefined };
  let position = from.position;
  for (const { segment, end } of durable) {
    if (position !== undefined && segment.number < position.segment) continue;
    const after = position?.segment === segment.number ? position.offset : 0;
    await readSegment(source, segment, after, end, byId, pass);
    if (pass.stoppedAt !== undefined) break;
    position = { segment: segment.number, offset: end };
  }

  const streams = new Map<string, ReadResult>();
  const seqs = new Map<string, number>();
  let more = false;
  for (const [name, fromSeq] of from.seqs) {
    const entry = wanted.get(name);
    seqs.set(name, entry?.nextSeq ?? fromSeq);
    if (entry === undefined) continue;
    if (entry.gap !== undefined || entry.records.length > 0) {
      streams.set(name, { gap: entry.gap, records: entry.records, nextSeq: entry.nextSeq });
    }
    if (entry.nextSeq <= entry.lastSeq) more = true;
  }
  return {
    streams,
    more: pass.stoppedAt !== undefined && more,
    next: { seqs, position: pass.stoppedAt ?? position },
  };
}

/** Walks the part of `segment` below `end` that holds wanted records, not before `after`. */
async function readSegment(
  source: ReadSource,
  segment: Segment,
  after: number,
  end: number,
  byId: ReadonlyMap<number, Wanted>,
  pass: Pass,
): Promise<void> {
  const inSegment = wantedIn(segment, byId);
  if (inSegment.size === 0) return;
  const entries = await source.segments.entriesOf(segment);
  let start = end;
  for (const [id, stream] of inSegment) {
    start = Math.min(start, startOffset(stream.held, entries.get(id), stream.wanted.nextSeq));
  }
  start = Math.max(start, after);
  if (start >= end) return;
  const handle = await open(join(source.dir, segment.fileName), 'r');
  try {
    const walk = await walkFrames(handle, start, end, (frame, offset) =>
      collectFrame(frame, segment.number, offset, inSegment, pass),
    );
    if (walk.outcome === 'damaged')
      throw logError('corrupt', `segment ${segment.number} is damaged where a read needs it`);
  } finally {
    await handle.close();
  }
}

/** The wanted streams that still lack records `segment` holds. */
function wantedIn(segment: Segment, byId: ReadonlyMap<number, Wanted>): Map<number, InSegment> {
  const found = new Map<number, InSegment>();
  const consider = (wanted: Wanted, held: SegmentStream): void => {
    const lastSeq = Math.min(held.lastSeq, wanted.lastSeq);
    if (wanted.nextSeq <= lastSeq && held.firstSeq <= lastSeq)
      found.set(wanted.id, { wanted, held, lastSeq });
  };
  // Whichever is smaller: a segment of a few streams, or a read of a few.
  if (segment.streams.size < byId.size) {
    for (const [id, held] of segment.streams) {
      const wanted = byId.get(id);
      if (wanted !== undefined) consider(wanted, held);
    }
  } else {
    for (const wanted of byId.values()) {
      const held = segment.streams.get(wanted.id);
      if (held !== undefined) consider(wanted, held);
    }
  }
  return found;
}

/** Takes what a frame holds of the wanted streams; false once the walk of its segment can end. */
function collectFrame(
  frame: Frame,
  segmentNumber: number,
  offset: number,
  inSegment: Map<number, InSegment>,
  pass: Pass,
): boolean {
  pass.counters.framesScanned++;
  pass.counters.bytesScanned += frame.frameBytes;
  if (frame.kind !== FRAME_KIND.records) return true;
  const stream = inSegment.get(frame.streamId);
  if (stream === undefined) return true;
  const { wanted } = stream;
  if (frame.firstSeq + frame.count <= wanted.nextSeq) return true;
  forEachRecord(frame, (seq, bytes) => {
    if (seq < wanted.nextSeq) return true;
    if (seq > stream.lastSeq) return false;
    // A copy: the walk reuses its buffer, and a record must not pin a whole chunk in memory.
    wanted.records.push({ seq, bytes: new Uint8Array(bytes) });
    wanted.nextSeq = seq + 1;
    pass.records++;
    pass.bytes += bytes.byteLength;
    return !isFull(pass);
  });
  if (isFull(pass)) {
    pass.stoppedAt = { segment: segmentNumber, offset };
    return false;
  }
  if (wanted.nextSeq > stream.lastSeq) inSegment.delete(frame.streamId);
  return inSegment.size > 0;
}

function isFull(pass: Pass): boolean {
  return pass.records >= pass.bounds.maxRecords || pass.bytes >= pass.bounds.maxBytes;
}

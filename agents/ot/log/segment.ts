/**
 * What the log knows about one segment without reading it: its size, which streams it holds and
 * their sequence ranges, the times of its first and last append, and (while it is active, or once
 * loaded from its index) a sparse map from sequence numbers to frame offsets.
 */
import { INDEX_STRIDE_BYTES } from './limits.ts';
import { SEGMENT_HEADER_BYTES, indexFileName, segmentFileName } from './segment-file.ts';

/** One stream's records in one segment. */
export interface SegmentStream {
  firstSeq: number;
  lastSeq: number;
  /** Offset of the stream's first records frame in the segment. */
  readonly firstOffset: number;
}

/**
 * One stream's sparse index in one segment: `seqs[i]` is the first sequence number of the records
 * frame at `offsets[i]`; an entry every INDEX_STRIDE_BYTES of segment.
 */
export interface StreamEntries {
  readonly seqs: number[];
  readonly offsets: number[];
}

export class Segment {
  readonly number: number;
  readonly fileName: string;
  readonly indexFileName: string;
  /** Bytes written to the segment file. */
  size: number;
  /** Bytes known to be durable: readers never look past them. */
  syncedSize: number;
  /** Whether the segment is full and its index written; it is never appended to again. */
  sealed = false;
  indexBytes = 0;
  firstAppendMs: number | undefined;
  lastAppendMs: number | undefined;
  readonly streams = new Map<number, SegmentStream>();
  /** Streams whose definition frame the segment holds. */
  readonly defined = new Set<number>();
  /** Kept for the active segment; for a sealed one, the index file holds it (see SegmentIndexCache). */
  entries: Map<number, StreamEntries> | undefined = new Map();

  constructor(segmentNumber: number, size = SEGMENT_HEADER_BYTES) {
    this.number = segmentNumber;
    this.fileName = segmentFileName(segmentNumber);
    this.indexFileName = indexFileName(segmentNumber);
    this.size = size;
    this.syncedSize = size;
  }

  get isEmpty(): boolean {
    return this.streams.size === 0;
  }

  diskBytes(): number {
    return this.size + this.indexBytes;
  }

  noteRecords(
    streamId: number,
    firstSeq: number,
    lastSeq: number,
    offset: number,
    appendedAtMs: number,
  ): void {
    const stream = this.streams.get(streamId);
    if (stream === undefined) this.streams.set(streamId, { firstSeq, lastSeq, firstOffset: offset });
    else stream.lastSeq = lastSeq;
    this.firstAppendMs ??= appendedAtMs;
    this.lastAppendMs = Math.max(this.lastAppendMs ?? appendedAtMs, appendedAtMs);
    if (this.entries === undefined) return;
    const entries = this.entries.get(streamId);
    if (entries === undefined) {
      this.entries.set(streamId, { seqs: [firstSeq], offsets: [offset] });
    } else if (offset - (entries.offsets.at(-1) ?? 0) >= INDEX_STRIDE_BYTES) {
      entries.seqs.push(firstSeq);
      entries.offsets.push(offset);
    }
  }
}

/** Where to start reading `streamId` for `seq`: the last indexed frame that starts at or before it. */
export function startOffset(stream: SegmentStream, entries: StreamEntries | undefined, seq: number): number {
  if (entries === undefined) return stream.firstOffset;
  let low = 0;
  let high = entries.seqs.length - 1;
  let found = stream.firstOffset;
  while (low <= high) {
    const middle = (low + high) >>> 1;
    if ((entries.seqs[middle] ?? Infinity) <= seq) {
      found = entries.offsets[middle] ?? found;
      low = middle + 1;
    } else {
      high = middle - 1;
    }
  }
  return found;
}

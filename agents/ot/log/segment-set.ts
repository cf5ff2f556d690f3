/**
 * The log's segments, oldest first, and the sparse indexes of the sealed ones that readers have
 * needed lately (loaded from their index files, a few at a time).
 */
import { INDEX_CACHE_SEGMENTS } from './limits.ts';
import { readIndexEntries } from './segment-index.ts';
import type { Segment, StreamEntries } from './segment.ts';

export class SegmentSet {
  readonly #dir: string;
  #segments: Segment[] = [];
  #highestNumber = 0;
  /** Insertion order is use order: the first key is the least recently used. */
  readonly #entryCache = new Map<Segment, Map<number, StreamEntries>>();

  /** `floor`: the highest number an earlier run may have given, when its segments are gone. */
  constructor(dir: string, segments: readonly Segment[], floor = 0) {
    this.#dir = dir;
    this.#segments = [...segments];
    this.#highestNumber = Math.max(segments.at(-1)?.number ?? 0, floor);
  }

  /**
   * The number for a new segment. Never one used before in this process, even once retention
   * deleted every segment: a reader holding the old segment must not open a new file by its name.
   */
  nextNumber(): number {
    return this.#highestNumber + 1;
  }

  /** The segments now, oldest first; a snapshot, safe to hold across awaits. */
  list(): readonly Segment[] {
    return this.#segments;
  }

  get newest(): Segment | undefined {
    return this.#segments.at(-1);
  }

  add(segment: Segment): void {
    this.#segments = [...this.#segments, segment];
    this.#highestNumber = Math.max(this.#highestNumber, segment.number);
  }

  remove(removed: readonly Segment[]): void {
    const gone = new Set(removed);
    this.#segments = this.#segments.filter((segment) => !gone.has(segment));
    for (const segment of removed) this.#entryCache.delete(segment);
  }

  diskBytes(): number {
    let bytes = 0;
    for (const segment of this.#segments) bytes += segment.diskBytes();
    return bytes;
  }

  /** The oldest retained sequence number of a stream, or undefined when no segment holds it. */
  firstSeqOf(streamId: number): number | undefined {
    for (const segment of this.#segments) {
      const stream = segment.streams.get(streamId);
      if (stream !== undefined) return stream.firstSeq;
    }
    return undefined;
  }

  /** Keeps a sealed segment's entries at hand (they were just written to its index). */
  remember(segment: Segment, entries: Map<number, StreamEntries>): void {
    this.#entryCache.delete(segment);
    this.#entryCache.set(segment, entries);
    for (const oldest of this.#entryCache.keys()) {
      if (this.#entryCache.size <= INDEX_CACHE_SEGMENTS) break;
      this.#entryCache.delete(oldest);
    }
  }

  /** The sparse index of a segment: in memory while active, from its index file once sealed. */
  async entriesOf(segment: Segment): Promise<Map<number, StreamEntries>> {
    if (segment.entries !== undefined) return segment.entries;
    const cached = this.#entryCache.get(segment);
    const entries = cached ?? (await readIndexEntries(this.#dir, segment));
    this.remember(segment, entries);
    return entries;
  }
}

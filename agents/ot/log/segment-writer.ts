/**
 * Writes commits to the active segment: frames appended in order, one write and one fdatasync per
 * commit, a definition frame before a stream's first records in each segment, and a roll to a new
 * segment (the old one sealed: its index written) when a frame would overflow it or its oldest
 * record is older than a quarter of maxAgeMs. Runs only inside the commit queue's exclusive lane.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { CommitItem } from './commit-queue.ts';
import { encodeDefinitionFrame } from './frame.ts';
import { SEGMENTS_PER_AGE_WINDOW } from './limits.ts';
import { writeLogFile } from './log-directory.ts';
import { storageFailure } from './log-errors.ts';
import { encodeSegmentIndex } from './segment-index.ts';
import { encodeSegmentHeader } from './segment-file.ts';
import type { SegmentSet } from './segment-set.ts';
import { Segment } from './segment.ts';
import type { StreamState, StreamTable } from './stream-table.ts';

/** One append, encoded and numbered, waiting for its commit. */
export interface PendingAppend extends CommitItem {
  readonly stream: StreamState;
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly frame: Buffer;
  readonly appendedAtMs: number;
}

export interface WriterCounters {
  dataSyncs: number;
  bytesWritten: number;
  segmentsSealed: number;
}

export interface SegmentWriterOptions {
  readonly dir: string;
  readonly segmentBytes: number;
  readonly maxAgeMs: number;
  readonly now: () => number;
}

export class SegmentWriter {
  readonly #options: SegmentWriterOptions;
  readonly #segments: SegmentSet;
  readonly #table: StreamTable;
  readonly #counters: WriterCounters;
  #active: Segment | undefined;
  #handle: FileHandle | undefined;

  private constructor(
    options: SegmentWriterOptions,
    segments: SegmentSet,
    table: StreamTable,
    counters: WriterCounters,
  ) {
    this.#options = options;
    this.#segments = segments;
    this.#table = table;
    this.#counters = counters;
  }

  /** A writer that continues the newest segment if it is not sealed. */
  static async open(
    options: SegmentWriterOptions,
    segments: SegmentSet,
    table: StreamTable,
    counters: WriterCounters,
  ): Promise<SegmentWriter> {
    const writer = new SegmentWriter(options, segments, table, counters);
    const newest = segments.newest;
    if (newest !== undefined && !newest.sealed) {
      try {
        writer.#handle = await open(join(options.dir, newest.fileName), 'r+');
      } catch (cause) {
        throw storageFailure('opening the active segment', cause);
      }
      writer.#active = newest;
    }
    return writer;
  }

  get active(): Segment | undefined {
    return this.#active;
  }

  /** Writes `items` in order and returns once all of them are durable; whether a segment was sealed. */
  async commit(items: readonly PendingAppend[]): Promise<boolean> {
    let sealed = false;
    let chunks: Buffer[] = [];
    let written: PendingAppend[] = [];
    for (const item of items) {
      let segment = this.#active;
      const definition = segment?.defined.has(item.stream.id)
        ? undefined
        : encodeDefinitionFrame(item.stream.id, item.stream.name, item.appendedAtMs);
      if (segment !== undefined && this.#mustRoll(segment, item.bytes + (definition?.byteLength ?? 0))) {
        await this.#writeAndSync(chunks, written);
        chunks = [];
        written = [];
        await this.seal();
        sealed = true;
        segment = undefined;
      }
      segment ??= await this.#createSegment();
      if (!segment.defined.has(item.stream.id)) {
        const frame =
          definition ?? encodeDefinitionFrame(item.stream.id, item.stream.name, item.appendedAtMs);
        chunks.push(frame);
        segment.defined.add(item.stream.id);
        segment.size += frame.byteLength;
      }
      segment.noteRecords(item.stream.id, item.firstSeq, item.lastSeq, segment.size, item.appendedAtMs);
      chunks.push(item.frame);
      segment.size += item.frame.byteLength;
      written.push(item);
    }
    await this.#writeAndSync(chunks, written);
    return sealed;
  }

  /** Seals the active segment if it holds records older than `ageMs` (an idle log ages too). */
  async sealIfOlder(ageMs: number): Promise<boolean> {
    const active = this.#active;
    if (active?.firstAppendMs === undefined || this.#options.now() - active.firstAppendMs < ageMs)
      return false;
    await this.seal();
    return true;
  }

  /** Writes the active segment's index and leaves it for good; the next commit starts a new one. */
  async seal(): Promise<void> {
    const segment = this.#active;
    if (segment === undefined) return;
    await this.#closeHandle();
    this.#active = undefined;
    const index = encodeSegmentIndex(segment, (id) => this.#table.byId(id)?.name ?? '');
    await writeLogFile(this.#options.dir, segment.indexFileName, index);
    segment.sealed = true;
    segment.indexBytes = index.byteLength;
    if (segment.entries !== undefined) this.#segments.remember(segment, segment.entries);
    segment.entries = undefined;
    this.#counters.segmentsSealed++;
  }

  /** Closes the active segment's file without sealing it: a reopen continues it. */
  async close(): Promise<void> {
    await this.#closeHandle();
    this.#active = undefined;
  }

  #mustRoll(segment: Segment, bytes: number): boolean {
    if (segment.isEmpty) return false;
    if (segment.size + bytes > this.#options.segmentBytes) return true;
    const oldest = segment.firstAppendMs ?? this.#options.now();
    return this.#options.now() - oldest >= this.#options.maxAgeMs / SEGMENTS_PER_AGE_WINDOW;
  }

  async #createSegment(): Promise<Segment> {
    const segment = new Segment(this.#segments.nextNumber());
    await writeLogFile(
      this.#options.dir,
      segment.fileName,
      encodeSegmentHeader(segment.number, this.#options.now()),
    );
    try {
      this.#handle = await open(join(this.#options.dir, segment.fileName), 'r+');
    } catch (cause) {
      throw storageFailure('opening a new segment', cause);
    }
    this.#segments.add(segment);
    this.#active = segment;
    return segment;
  }

  async #writeAndSync(chunks: readonly Buffer[], items: readonly PendingAppend[]): Promise<void> {
    const segment = this.#active;
    const handle = this.#handle;
    if (chunks.length === 0 || segment === undefined || handle === undefined) return;
    const data = chunks.length === 1 && chunks[0] !== undefined ? chunks[0] : Buffer.concat(chunks);
    const position = segment.syncedSize;
    try {
      for (let done = 0; done < data.byteLength;) {
        const { bytesWritten } = await handle.write(data, done, data.byteLength - done, position + done);
        done += bytesWritten;
      }
      await handle.datasync();
    } catch (cause) {
      throw storageFailure('writing records', cause);
    }
    this.#counters.dataSyncs++;
    this.#counters.bytesWritten += data.byteLength;
    segment.syncedSize = position + data.byteLength;
    for (const item of items) item.stream.durableSeq = item.lastSeq;
  }

  async #closeHandle(): Promise<void> {
    const handle = this.#handle;
    this.#handle = undefined;
    try {
      await handle?.close();
    } catch (cause) {
      throw storageFailure('closing a segment', cause);
    }
  }
}

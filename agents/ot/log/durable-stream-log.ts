/**
 * The stream log once open (stream-log.ts opens it): appends numbered in call order and
 * group-committed by the commit queue, reads over the segment set, retention in the queue's
 * exclusive lane, and the stop after a storage failure.
 */
import { DmzError } from '../../../relay/protocol/errors.ts';
import type { ProcessLock } from '../../../relay/protocol/process-lock.ts';
import { writeCheckpoint } from './checkpoint.ts';
import { CommitQueue } from './commit-queue.ts';
import { agreeWith, type EpochAgreement, type LogEpoch } from './epochs.ts';
import { encodeRecordsFrame, recordsFrameBytes } from './frame.ts';
import { checkReadRange, checkRecords, checkStreamName, checkStreamsRead } from './input-checks.ts';
import {
  MAX_COMMIT_BYTES,
  MAX_PENDING_BYTES,
  MAX_READ_BYTES,
  MAX_SEQ,
  MAX_STREAMS_READ_BYTES,
  RETENTION_INTERVAL_MS,
  SEGMENTS_PER_AGE_WINDOW,
} from './limits.ts';
import { logError, storageFailure } from './log-errors.ts';
import type { ResolvedStreamLogOptions } from './options.ts';
import type { Recovery } from './recovery.ts';
import { deleteSegments, selectExpiredSegments, type RetentionOutcome } from './retention.ts';
import type { SegmentSet } from './segment-set.ts';
import type { PendingAppend, SegmentWriter, WriterCounters } from './segment-writer.ts';
import type { AppendResult, StreamLog, StreamLogStats } from './stream-log.ts';
import {
  firstRetainedSeq,
  readStream,
  readStreams,
  type ReadCounters,
  type ReadResult,
  type ReadSource,
  type StreamsCursor,
  type StreamsReadResult,
} from './stream-reader.ts';
import type { StreamTable } from './stream-table.ts';

/** What opening the log made: the recovered state, the writer on it, this open's epoch. */
export interface OpenedLog {
  readonly options: ResolvedStreamLogOptions;
  readonly lock: ProcessLock;
  readonly table: StreamTable;
  readonly segments: SegmentSet;
  readonly writer: SegmentWriter;
  readonly counters: WriterCounters;
  readonly recovery: Recovery;
  /** Oldest first; the last is this open's. */
  readonly epoch: { readonly epochs: readonly LogEpoch[]; readonly bytes: number };
}

export class DurableStreamLog implements StreamLog {
  readonly #options: ResolvedStreamLogOptions;
  readonly #lock: ProcessLock;
  readonly #table: StreamTable;
  readonly #segments: SegmentSet;
  readonly #writer: SegmentWriter;
  readonly #counters: WriterCounters;
  readonly #queue: CommitQueue<PendingAppend>;
  readonly #recovery: Recovery;
  readonly #readCounters: ReadCounters = { framesScanned: 0, bytesScanned: 0 };
  readonly #readSource: ReadSource;
  /** Oldest first; the last is this open's. */
  readonly #epochs: readonly LogEpoch[];
  readonly #epochBytes: number;
  #checkpointBytes: number;
  #appends = 0;
  #records = 0;
  #segmentsDeleted = 0;
  #failure: DmzError | undefined;
  #closing: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(opened: OpenedLog) {
    const { options, segments } = opened;
    this.#options = options;
    this.#lock = opened.lock;
    this.#table = opened.table;
    this.#segments = segments;
    this.#writer = opened.writer;
    this.#counters = opened.counters;
    this.#recovery = opened.recovery;
    this.#checkpointBytes = opened.recovery.checkpointBytes;
    this.#epochs = opened.epoch.epochs;
    this.#epochBytes = opened.epoch.bytes;
    this.#readSource = { dir: options.dir, segments, table: opened.table, counters: this.#readCounters };
    this.#queue = new CommitQueue<PendingAppend>({
      commit: async (items) => {
        // Retention after a seal runs next in the exclusive lane, so close() waits for it too.
        if (await this.#writer.commit(items)) void this.#retainExclusively().catch(() => undefined);
      },
      onFailure: (error) => this.#fail(error),
      maxCommitBytes: MAX_COMMIT_BYTES,
      delayMs: options.commitDelayMs,
    });
  }

  startRetentionTimer(): void {
    // A failure is kept in #failure and reported by the next append; the timer itself must not throw.
    this.#timer = setInterval(
      () => void this.enforceRetention().catch(() => undefined),
      RETENTION_INTERVAL_MS,
    );
    this.#timer.unref();
  }

  // Everything before the await runs at the call, so the records of one stream are numbered in
  // the order of the calls, and a refused append numbers and writes nothing.
  async append(stream: string, records: readonly Uint8Array[]): Promise<AppendResult> {
    this.#checkOpen();
    const known = this.#table.byName(stream);
    if (known === undefined) checkStreamName(stream);
    checkRecords(records);
    const frameBytes = recordsFrameBytes(records);
    if (this.#queue.waitingBytes + frameBytes > MAX_PENDING_BYTES) {
      throw logError('busy', 'the stream log is behind: await appends before making more');
    }
    const state = known ?? this.#table.create(stream);
    const firstSeq = state.assignedSeq + 1;
    const lastSeq = state.assignedSeq + records.length;
    if (lastSeq > MAX_SEQ) throw logError('append', 'the stream has used up its sequence numbers');
    const appendedAtMs = this.#options.now();
    const frame = encodeRecordsFrame(state.id, firstSeq, records, appendedAtMs);
    state.assignedSeq = lastSeq;
    this.#appends++;
    this.#records += records.length;
    await this.#queue.enqueue({
      stream: state,
      firstSeq,
      lastSeq,
      frame,
      appendedAtMs,
      bytes: frame.byteLength,
    });
    return { firstSeq, lastSeq };
  }

  async read(stream: string, fromSeq: number, maxRecords: number): Promise<ReadResult> {
    if (this.#closing !== undefined) throw logError('closed', 'the stream log is closed');
    checkReadRange(fromSeq, maxRecords);
    return readStream(this.#readSource, stream, fromSeq, { maxRecords, maxBytes: MAX_READ_BYTES });
  }

  async readStreams(
    from: ReadonlyMap<string, number> | StreamsCursor,
    maxRecords: number,
  ): Promise<StreamsReadResult> {
    if (this.#closing !== undefined) throw logError('closed', 'the stream log is closed');
    const cursor = 'seqs' in from ? from : { seqs: from, position: undefined };
    checkStreamsRead(cursor.seqs, maxRecords);
    return readStreams(this.#readSource, cursor, { maxRecords, maxBytes: MAX_STREAMS_READ_BYTES });
  }

  lastSeq(stream: string): number {
    return this.#table.byName(stream)?.durableSeq ?? 0;
  }

  firstSeq(stream: string): number {
    const state = this.#table.byName(stream);
    return state === undefined ? 1 : firstRetainedSeq(this.#segments, state);
  }

  streams(): string[] {
    return [...this.#table.all()].map((stream) => stream.name);
  }

  epochs(count: number): string[] {
    return this.#epochs
      .slice(-count)
      .map((epoch) => epoch.id)
      .reverse();
  }

  agreement(known: readonly string[]): EpochAgreement {
    return agreeWith(
      {
        epochs: this.#epochs,
        segments: this.#segments.list(),
        highestSegment: this.#segments.nextNumber() - 1,
        table: this.#table,
      },
      known,
    );
  }

  bytesOnDisk(): number {
    return this.#segments.diskBytes() + this.#checkpointBytes + this.#epochBytes;
  }

  stats(): StreamLogStats {
    return {
      appends: this.#appends,
      records: this.#records,
      dataSyncs: this.#counters.dataSyncs,
      bytesWritten: this.#counters.bytesWritten,
      segments: this.#segments.list().length,
      segmentsSealed: this.#counters.segmentsSealed,
      segmentsDeleted: this.#segmentsDeleted,
      scannedBytesAtOpen: this.#recovery.scannedBytes,
      truncatedBytesAtOpen: this.#recovery.truncatedBytes,
      framesScanned: this.#readCounters.framesScanned,
      bytesScanned: this.#readCounters.bytesScanned,
    };
  }

  async enforceRetention(): Promise<RetentionOutcome> {
    this.#checkOpen();
    return this.#retainExclusively();
  }

  #retainExclusively(): Promise<RetentionOutcome> {
    return this.#queue.exclusive(async () => {
      if (this.#failure !== undefined) throw this.#failure;
      try {
        return await this.#retain();
      } catch (error) {
        this.#fail(error);
        throw error;
      }
    });
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    clearInterval(this.#timer);
    try {
      await this.#queue.flush();
      await this.#queue.exclusive(() => this.#writer.close());
    } finally {
      this.#lock.release();
    }
  }

  async #retain(): Promise<RetentionOutcome> {
    const { maxAgeMs, maxBytes, dir } = this.#options;
    await this.#writer.sealIfOlder(maxAgeMs / SEGMENTS_PER_AGE_WINDOW);
    const otherBytes = this.#checkpointBytes + this.#epochBytes;
    const limits = { maxBytes, maxAgeMs, now: this.#options.now(), otherBytes };
    const expired = selectExpiredSegments(this.#segments.list(), limits);
    if (expired.length === 0) return { deletedSegments: 0, freedBytes: 0 };
    // The counters first: once the segments are gone, the checkpoint is where they live.
    this.#checkpointBytes = await writeCheckpoint(dir, this.#table, this.#segments.nextNumber() - 1);
    const freedBytes = await deleteSegments(dir, this.#segments, expired);
    this.#segmentsDeleted += expired.length;
    return { deletedSegments: expired.length, freedBytes };
  }

  #checkOpen(): void {
    if (this.#closing !== undefined) throw logError('closed', 'the stream log is closed');
    if (this.#failure !== undefined) throw this.#failure;
  }

  /**
   * After a failed write or sync the log stops: what reached the disk is unknown (a failed
   * fdatasync may have dropped dirty pages, so retrying it could report lost data durable; the
   * PostgreSQL "fsyncgate" lesson). A reopen recovers from what the disk really holds.
   */
  #fail(error: unknown): void {
    this.#failure ??= error instanceof DmzError ? error : storageFailure('writing', error);
    this.#queue.rejectAll(this.#failure);
  }
}

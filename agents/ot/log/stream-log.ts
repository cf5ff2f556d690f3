/**
 * The OT agent's durable, sequenced stream log (DESIGN.md, "Data that must not be lost"). Many
 * streams share one log of append-only segment files; each stream numbers its records from 1,
 * strictly increasing, never reused (across restarts and retention). An append resolves once its
 * records are durable (fdatasync), group-committed with whatever else arrived meanwhile. A read
 * replays a stream from any sequence number, with an explicit gap where retention deleted records.
 *
 * A sequence number becomes the stream's the moment its append resolves; one whose append never
 * resolved (the process died first) may be given to another record after a restart. Publish a
 * point only after its append resolved.
 *
 * Every open is a new epoch of the log (epochs.ts), so a consumer's cursor can say which run of
 * the log its points came from, and a log re-created or restored from an older copy is told apart
 * from the one the consumer read.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { syncDirectory } from '../../../relay/protocol/durable-files.ts';
import { DmzError } from '../../../relay/protocol/errors.ts';
import type { ProcessLock } from '../../../relay/protocol/process-lock.ts';
import { writeCheckpoint } from './checkpoint.ts';
import { CommitQueue } from './commit-queue.ts';
import { lockLogDirectory } from './directory-lock.ts';
import { agreeWith, readEpochs, startEpoch, type EpochAgreement, type LogEpoch } from './epochs.ts';
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
import { prepareLogDirectory } from './log-directory.ts';
import { logError, storageFailure } from './log-errors.ts';
import { resolveStreamLogOptions, type ResolvedStreamLogOptions, type StreamLogOptions } from './options.ts';
import { recoverLog } from './recovery.ts';
import { selectExpiredSegments } from './retention.ts';
import { SegmentSet } from './segment-set.ts';
import { SegmentWriter, type PendingAppend, type WriterCounters } from './segment-writer.ts';
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
import { StreamTable } from './stream-table.ts';

export type { EpochAgreement } from './epochs.ts';
export type { StreamLogOptions } from './options.ts';
export type {
  LogGap,
  LogPosition,
  LogRecord,
  ReadResult,
  StreamsCursor,
  StreamsReadResult,
} from './stream-reader.ts';

export interface AppendResult {
  readonly firstSeq: number;
  readonly lastSeq: number;
}

export interface RetentionOutcome {
  readonly deletedSegments: number;
  readonly freedBytes: number;
}

/** Counters since open, for metrics and for tests that must not time things. */
export interface StreamLogStats {
  readonly appends: number;
  readonly records: number;
  /** Commits that reached the disk: one write and one fdatasync of record frames each. */
  readonly dataSyncs: number;
  readonly bytesWritten: number;
  readonly segments: number;
  readonly segmentsSealed: number;
  readonly segmentsDeleted: number;
  /** Segment bytes read at open (the active segment's, unless an index was missing). */
  readonly scannedBytesAtOpen: number;
  /** Torn-tail bytes cut off at open. */
  readonly truncatedBytesAtOpen: number;
  /** Frames reads walked since open (each parsed and CRC-checked), and their bytes: what reads cost. */
  readonly framesScanned: number;
  readonly bytesScanned: number;
}

export interface StreamLog {
  /** Numbers `records` for `stream` and resolves once they are durable. */
  append(stream: string, records: readonly Uint8Array[]): Promise<AppendResult>;
  /** Up to `maxRecords` durable records of `stream` from `fromSeq` on, after a gap if some are gone. */
  read(stream: string, fromSeq: number, maxRecords: number): Promise<ReadResult>;
  /**
   * Up to `maxRecords` durable records of many streams (stream -> first sequence number wanted),
   * in one pass in log order, each stream's after its gap if some are gone; `result.next` passed
   * back continues exactly where this read stopped.
   */
  readStreams(
    from: ReadonlyMap<string, number> | StreamsCursor,
    maxRecords: number,
  ): Promise<StreamsReadResult>;
  /** The last durable sequence number of `stream` (0 if it has none). */
  lastSeq(stream: string): number;
  /** The oldest sequence number still retained (lastSeq + 1 when none is). */
  firstSeq(stream: string): number;
  /** Every stream the log keeps a counter for, in the order they first appeared. */
  streams(): string[];
  /** The ids of the log's newest `count` epochs, newest (this open's) first. */
  epochs(count: number): string[];
  /**
   * How far a consumer whose cursor names `known` epochs (newest first) holds this log's points,
   * stream by stream; what it holds beyond that must be reset.
   */
  agreement(known: readonly string[]): EpochAgreement;
  bytesOnDisk(): number;
  stats(): StreamLogStats;
  /** Applies retention now (it also runs after every sealed segment and every RETENTION_INTERVAL_MS). */
  enforceRetention(): Promise<RetentionOutcome>;
  /** Waits for pending appends, then closes; later calls are refused. */
  close(): Promise<void>;
}

export async function openStreamLog(options: StreamLogOptions): Promise<StreamLog> {
  const resolved = resolveStreamLogOptions(options);
  await prepareLogDirectory(resolved.dir);
  const lock = lockLogDirectory(resolved.dir);
  try {
    const table = new StreamTable();
    const recovery = await recoverLog(resolved.dir, table);
    const previous = await readEpochs(resolved.dir);
    // Numbers keep growing across opens even once retention deleted every segment, so an epoch's
    // first segment is never one an earlier epoch wrote.
    const floor = Math.max(recovery.highestSegment, (previous.epochs.at(-1)?.firstSegment ?? 1) - 1);
    const segments = new SegmentSet(resolved.dir, recovery.segments, floor);
    const counters: WriterCounters = { dataSyncs: 0, bytesWritten: 0, segmentsSealed: 0 };
    const writer = await SegmentWriter.open(resolved, segments, table, counters);
    // This epoch's records go to segments of their own: the one the last run wrote is sealed.
    if (writer.active !== undefined && !writer.active.isEmpty) await writer.seal();
    const epoch = await startEpoch(
      resolved.dir,
      previous.epochs,
      writer.active?.number ?? segments.nextNumber(),
    );
    const log = new DurableStreamLog(resolved, lock, table, segments, writer, counters, recovery, epoch);
    try {
      // A budget or age lowered since the last run applies at once.
      await log.enforceRetention();
    } catch (error) {
      await log.close().catch(() => undefined);
      throw error;
    }
    log.startRetentionTimer();
    return log;
  } catch (error) {
    lock.release();
    throw error;
  }
}

class DurableStreamLog implements StreamLog {
  readonly #options: ResolvedStreamLogOptions;
  readonly #lock: ProcessLock;
  readonly #table: StreamTable;
  readonly #segments: SegmentSet;
  readonly #writer: SegmentWriter;
  readonly #counters: WriterCounters;
  readonly #queue: CommitQueue<PendingAppend>;
  readonly #recovery: { readonly scannedBytes: number; readonly truncatedBytes: number };
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

  constructor(
    options: ResolvedStreamLogOptions,
    lock: ProcessLock,
    table: StreamTable,
    segments: SegmentSet,
    writer: SegmentWriter,
    counters: WriterCounters,
    recovery: {
      readonly scannedBytes: number;
      readonly truncatedBytes: number;
      readonly checkpointBytes: number;
    },
    epoch: { readonly epochs: readonly LogEpoch[]; readonly bytes: number },
  ) {
    this.#options = options;
    this.#lock = lock;
    this.#table = table;
    this.#segments = segments;
    this.#writer = writer;
    this.#counters = counters;
    this.#recovery = recovery;
    this.#checkpointBytes = recovery.checkpointBytes;
    this.#epochs = epoch.epochs;
    this.#epochBytes = epoch.bytes;
    this.#readSource = { dir: options.dir, segments, table, counters: this.#readCounters };
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
    this.#segments.remove(expired);
    let freedBytes = 0;
    try {
      for (const segment of expired) {
        await rm(join(dir, segment.fileName), { force: true });
        await rm(join(dir, segment.indexFileName), { force: true });
        freedBytes += segment.diskBytes();
      }
      await syncDirectory(dir);
    } catch (cause) {
      throw storageFailure('deleting old segments', cause);
    }
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

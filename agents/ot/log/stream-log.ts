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
import { DurableStreamLog } from './durable-stream-log.ts';
import { lockLogDirectory } from './directory-lock.ts';
import { readEpochs, startEpoch, type EpochAgreement } from './epochs.ts';
import { prepareLogDirectory } from './log-directory.ts';
import { resolveStreamLogOptions, type StreamLogOptions } from './options.ts';
import { recoverLog } from './recovery.ts';
import type { RetentionOutcome } from './retention.ts';
import { SegmentSet } from './segment-set.ts';
import { SegmentWriter, type WriterCounters } from './segment-writer.ts';
import type { ReadResult, StreamsCursor, StreamsReadResult } from './stream-reader.ts';
import { StreamTable } from './stream-table.ts';

export type { EpochAgreement } from './epochs.ts';
export type { StreamLogOptions } from './options.ts';
export type { RetentionOutcome } from './retention.ts';
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
    const log = new DurableStreamLog({
      options: resolved,
      lock,
      table,
      segments,
      writer,
      counters,
      recovery,
      epoch,
    });
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

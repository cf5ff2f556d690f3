/**
 * The IT agent's first sink: an append-only JSON Lines file per UTC day (jsonl-format.ts), in a
 * private directory. A write resolves once its lines are on disk (fdatasync); writes that arrive
 * while a commit is in flight are group-committed in the next one (one write and one fdatasync for
 * all of them). What the files hold is the consumer's cursor: lastSeq moves only once a line is
 * durable, and a reopen after kill -9 finds it again from the checkpoint and the lines after it
 * (jsonl-recovery.ts), so a replay from lastSeq + 1 writes no line twice.
 *
 * The OT agents' log epochs (Sink.noteLogEpochs) live in the checkpoint, written in order with
 * the lines (#commit): the data files hold only what a historian reads.
 *
 * Lines only ever go to the newest file: a clock that steps back keeps writing the newest day, so
 * the checkpoint's "every file before this one is covered" stays true.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { syncDirectory } from '../../../relay/protocol/durable-files.ts';
import { DmzError } from '../../../relay/protocol/errors.ts';
import { PRIVATE_FILE_MODE } from '../../../relay/protocol/file-permissions.ts';
import type { ProcessLock } from '../../../relay/protocol/process-lock.ts';
import { CommitQueue } from '../../ot/log/commit-queue.ts';
import { writeCheckpoint } from './jsonl-checkpoint.ts';
import { dataFileName, encodeLine } from './jsonl-format.ts';
import {
  CHECKPOINT_EVERY_BYTES,
  CHECKPOINT_EVERY_MS,
  MAX_COMMIT_BYTES,
  MAX_PENDING_BYTES,
  MAX_WRITE_BYTES,
} from './jsonl-limits.ts';
import {
  resolveJsonLinesSinkOptions,
  type JsonLinesSinkOptions,
  type ResolvedJsonLinesSinkOptions,
} from './jsonl-options.ts';
import { recoverSink, type SinkRecovery } from './jsonl-recovery.ts';
import { SinkCursors, type SinkOrigin } from './sink-cursors.ts';
import { lockSinkDirectory, prepareSinkDirectory } from './sink-directory.ts';
import { sinkError, sinkStorageFailure } from './sink-errors.ts';
import type { Sink, SinkEntry } from './sink.ts';

export type { JsonLinesSinkOptions } from './jsonl-options.ts';

const NO_LINES = Buffer.alloc(0);

/** Counters since open, for metrics and for tests that must not time things. */
export interface JsonLinesSinkStats {
  /** write() calls accepted (with at least one entry). */
  readonly writes: number;
  readonly entries: number;
  /** Commits that reached the disk: one write and one fdatasync of lines each. */
  readonly dataSyncs: number;
  readonly bytesWritten: number;
  readonly checkpoints: number;
  /** Data-file bytes read at open: the lines after the checkpoint. */
  readonly scannedBytesAtOpen: number;
  /** Torn-tail bytes cut off at open. */
  readonly truncatedBytesAtOpen: number;
}

export interface JsonLinesSink extends Sink {
  stats(): JsonLinesSinkStats;
}

/** A day's file; its handle opens at the first commit that goes to it. */
interface DataFile {
  readonly name: string;
  handle: FileHandle | undefined;
  size: number;
}

interface PendingWrite {
  readonly bytes: number;
  readonly lines: Buffer;
  /** Where the write leaves each topic it touches. */
  readonly advance: ReadonlyMap<string, number>;
  /** An OT agent's new log epochs (a write of no lines). */
  readonly origin?: SinkOrigin;
}

export async function openJsonLinesSink(options: JsonLinesSinkOptions): Promise<JsonLinesSink> {
  const resolved = resolveJsonLinesSinkOptions(options);
  const { dir } = resolved;
  await prepareSinkDirectory(dir);
  const lock = lockSinkDirectory(dir);
  try {
    const recovery = await recoverSink(dir);
    const sink = new JsonLinesFileSink(resolved, lock, recovery);
    // What the scan read is covered from now on: a second crash need not read it again.
    if (recovery.scannedBytes > 0) await sink.checkpoint();
    return sink;
  } catch (error) {
    lock.release();
    throw error;
  }
}

class JsonLinesFileSink implements JsonLinesSink {
  readonly name: string;
  readonly #options: ResolvedJsonLinesSinkOptions;
  readonly #lock: ProcessLock;
  readonly #queue: CommitQueue<PendingWrite>;
  readonly #recovery: SinkRecovery;
  /** Held once on disk. */
  readonly #cursors: SinkCursors;
  /** The newest data file: where lines go. */
  #file: DataFile | undefined;
  #uncoveredBytes = 0;
  #checkpointAtMs: number;
  #writes = 0;
  #entries = 0;
  #dataSyncs = 0;
  #bytesWritten = 0;
  #checkpoints = 0;
  #failure: DmzError | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: ResolvedJsonLinesSinkOptions, lock: ProcessLock, recovery: SinkRecovery) {
    this.name = options.name;
    this.#options = options;
    this.#lock = lock;
    this.#recovery = recovery;
    this.#cursors = new SinkCursors(recovery.cursors, recovery.origins);
    this.#file = recovery.end && { name: recovery.end.file, handle: undefined, size: recovery.end.offset };
    this.#uncoveredBytes = recovery.scannedBytes;
    this.#checkpointAtMs = options.now();
    this.#queue = new CommitQueue<PendingWrite>({
      commit: (items) => this.#commit(items),
      onFailure: (error) => this.#fail(error),
      maxCommitBytes: MAX_COMMIT_BYTES,
      delayMs: 0,
    });
  }

  lastSeq(topic: string): number {
    return this.#cursors.lastSeq(topic);
  }

  cursors(): ReadonlyMap<string, number> {
    return new Map(this.#cursors.held);
  }

  logEpochs(agent: string): readonly string[] {
    return this.#cursors.logEpochs(agent);
  }

  async noteLogEpochs(agent: string, epochs: readonly string[]): Promise<void> {
    this.#checkOpen();
    const origin = this.#cursors.acceptOrigin(agent, epochs);
    if (origin === undefined) return;
    await this.#queue.enqueue({ bytes: 0, lines: NO_LINES, advance: new Map(), origin });
  }

  // Everything before the await runs at the call: writes are ordered by their calls, and a
  // refused write changes nothing.
  async write(entries: readonly SinkEntry[]): Promise<void> {
    this.#checkOpen();
    const advance = this.#cursors.plan(entries);
    if (entries.length === 0) return;
    const lines = Buffer.from(entries.map(encodeLine).join(''), 'utf8');
    if (lines.byteLength > MAX_WRITE_BYTES) {
      throw sinkError('entry', `a write holds at most ${MAX_WRITE_BYTES} bytes of lines: split it`);
    }
    if (this.#queue.waitingBytes + lines.byteLength > MAX_PENDING_BYTES) {
      throw sinkError('busy', 'the sink is behind: await writes before making more');
    }
    this.#cursors.accept(advance);
    this.#writes++;
    this.#entries += entries.length;
    await this.#queue.enqueue({ bytes: lines.byteLength, lines, advance });
  }

  stats(): JsonLinesSinkStats {
    return {
      writes: this.#writes,
      entries: this.#entries,
      dataSyncs: this.#dataSyncs,
      bytesWritten: this.#bytesWritten,
      checkpoints: this.#checkpoints,
      scannedBytesAtOpen: this.#recovery.scannedBytes,
      truncatedBytesAtOpen: this.#recovery.truncatedBytes,
    };
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  /** Rewrites the checkpoint to cover everything durable now. */
  async checkpoint(): Promise<void> {
    if (this.#file === undefined) return;
    const { name: file, size: offset } = this.#file;
    await writeCheckpoint(this.#options.dir, {
      file,
      offset,
      cursors: this.#cursors.held,
      origins: this.#cursors.heldOrigins,
    });
    this.#uncoveredBytes = 0;
    this.#checkpointAtMs = this.#options.now();
    this.#checkpoints++;
  }

  /**
   * Commits `items` in order. A new origin goes into the checkpoint, written once the lines before
   * it are durable and before any line after it is written: after a crash the sink never holds a
   * point of an OT log epoch newer than the one it names (the OT agent would reset what it holds).
   */
  async #commit(items: readonly PendingWrite[]): Promise<void> {
    let start = 0;
    for (const [index, item] of items.entries()) {
      if (item.origin === undefined) continue;
      await this.#commitLines(items.slice(start, index));
      this.#cursors.holdOrigin(item.origin);
      // The checkpoint names a data file: a sink that has none yet gets today's, empty.
      if (this.#file === undefined) await this.#openFile(this.#options.now());
      await this.checkpoint();
      start = index + 1;
    }
    await this.#commitLines(items.slice(start));
  }

  async #commitLines(items: readonly PendingWrite[]): Promise<void> {
    if (items.length === 0) return;
    const nowMs = this.#options.now();
    const { file, handle } = await this.#openFile(nowMs);
    const lines = Buffer.concat(items.map((item) => item.lines));
    try {
      for (let offset = 0; offset < lines.byteLength;) {
        offset += (await handle.write(lines, offset, lines.byteLength - offset)).bytesWritten;
      }
      await handle.datasync();
    } catch (cause) {
      throw sinkStorageFailure(`writing ${file.name}`, cause);
    }
    file.size += lines.byteLength;
    this.#dataSyncs++;
    this.#bytesWritten += lines.byteLength;
    for (const item of items) this.#cursors.hold(item.advance);
    this.#uncoveredBytes += lines.byteLength;
    const checkpointDue = nowMs - this.#checkpointAtMs >= CHECKPOINT_EVERY_MS;
    if (checkpointDue || this.#uncoveredBytes >= CHECKPOINT_EVERY_BYTES) await this.checkpoint();
  }

  /** The file for a commit at `nowMs`: today's, or the newest there is if the clock stepped back. */
  async #openFile(nowMs: number): Promise<{ file: DataFile; handle: FileHandle }> {
    const today = dataFileName(nowMs);
    if (today === undefined) {
      throw sinkError('failed', `the clock says ${nowMs} ms, outside the years 0000-9999 of the file names`);
    }
    const current = this.#file;
    const name = current !== undefined && current.name >= today ? current.name : today;
    if (current?.handle !== undefined && current.name === name)
      return { file: current, handle: current.handle };
    const path = join(this.#options.dir, name);
    try {
      await current?.handle?.close();
      this.#file = undefined;
      let handle: FileHandle;
      try {
        handle = await open(path, 'ax', PRIVATE_FILE_MODE);
        // A new file's name survives a power loss only once its directory is flushed.
        await syncDirectory(this.#options.dir);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        handle = await open(path, 'a');
      }
      const file: DataFile = { name, handle, size: (await handle.stat()).size };
      this.#file = file;
      return { file, handle };
    } catch (cause) {
      throw sinkStorageFailure(`opening ${name}`, cause);
    }
  }

  async #close(): Promise<void> {
    try {
      await this.#queue.flush();
      await this.#queue.exclusive(async () => {
        if (this.#failure === undefined && this.#uncoveredBytes > 0) await this.checkpoint();
      });
    } finally {
      try {
        await this.#file?.handle?.close();
      } finally {
        this.#lock.release();
      }
    }
  }

  #checkOpen(): void {
    if (this.#closing !== undefined) throw sinkError('closed', `the sink ${this.name} is closed`);
    if (this.#failure !== undefined) throw this.#failure;
  }

  /**
   * After a failed write or sync the sink stops: what reached the disk is unknown (a failed
   * fdatasync may have dropped dirty pages; the PostgreSQL "fsyncgate" lesson). A reopen finds
   * what the disk really holds, and lastSeq says it.
   */
  #fail(error: unknown): void {
    this.#failure ??= error instanceof DmzError ? error : sinkStorageFailure('writing', error);
    this.#queue.rejectAll(this.#failure);
  }
}

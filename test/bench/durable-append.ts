/**
 * Durable appends to the OT agent's stream log (agents/ot/log) against the bare ceiling on the same
 * disk, measured the same way for `npm run bench:log` (log-run.ts) and `npm run bench:runtime`
 * (runtime-run.ts): appends that each resolve after fdatasync, several appenders at once (group
 * commit), and a raw file written at its end with the same bytes, each write followed by
 * fdatasync. The three are measured in alternating short slices and summed: a VM disk's fdatasync
 * latency drifts by 2-3x from second to second (writeback of earlier runs), and the drift then
 * falls on all three alike.
 */
import { randomBytes } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { openStreamLog, type StreamLog } from '../../agents/ot/log/stream-log.ts';

/** A budget no run reaches, so retention does not take part in the figures. */
const LOG_BUDGET_BYTES = 8 * 1024 * 1024 * 1024;
const LOG_MAX_AGE_MS = 24 * 3_600_000;

/** Work done and time taken, summed over slices. */
class Meter {
  units = 0;
  seconds = 0;

  async slice(sliceMs: number, work: (until: number) => Promise<number>): Promise<void> {
    const started = performance.now();
    this.units += await work(started + sliceMs);
    this.seconds += (performance.now() - started) / 1000;
  }

  get rate(): number {
    return this.units / this.seconds;
  }
}

/** `appenders` loops appending `records` to streams in turn until `until`; returns points appended. */
async function appendUntil(
  log: StreamLog,
  streams: readonly string[],
  records: readonly Uint8Array[],
  appenders: number,
  until: number,
): Promise<number> {
  let points = 0;
  await Promise.all(
    Array.from({ length: appenders }, async (_, appender) => {
      for (let call = appender; performance.now() < until; call += appenders) {
        await log.append(streams[call % streams.length]!, records);
        points += records.length;
      }
    }),
  );
  return points;
}

/** The bare ceiling: a file written at its end, `data` at a time, each write followed by fdatasync. */
class RawFile {
  readonly #handle: FileHandle;
  #position = 0;

  private constructor(handle: FileHandle) {
    this.#handle = handle;
  }

  static async create(path: string): Promise<RawFile> {
    return new RawFile(await open(path, 'w', 0o600));
  }

  /** Returns the fdatasyncs done. */
  async syncUntil(data: Buffer, until: number): Promise<number> {
    let syncs = 0;
    while (performance.now() < until) {
      await this.#handle.write(data, 0, data.byteLength, this.#position);
      await this.#handle.datasync();
      this.#position += data.byteLength;
      syncs++;
    }
    return syncs;
  }

  close(): Promise<void> {
    return this.#handle.close();
  }
}

export interface DurableAppendWorkload {
  /** What one append call carries: the records of one stream. */
  readonly records: readonly Uint8Array[];
  /** Streams appended to in turn. */
  readonly streams: readonly string[];
  /** Append calls in flight at once. */
  readonly appenders: number;
  readonly slices: number;
  readonly sliceMs: number;
}

export interface DurableAppendResult {
  /** Durable points/s of the log. */
  readonly log: number;
  readonly pointsPerSync: number;
  /** Bytes the log wrote per fdatasync (its framing and group commit included). */
  readonly bytesPerSync: number;
  /** Raw points/s with one write of one append's record bytes per fdatasync. */
  readonly rawSameBatch: number;
  /** Raw points/s with the bytes the log wrote per fdatasync: the ratio to it is what the log costs. */
  readonly rawSameBytes: number;
  readonly diskBytesPerPoint: number;
}

/** Measures `workload` on a fresh log in `dir` (which must exist and be empty). */
export async function measureDurableAppends(
  dir: string,
  workload: DurableAppendWorkload,
): Promise<DurableAppendResult> {
  const { records, streams, appenders, slices, sliceMs } = workload;
  const log = await openStreamLog({
    dir: join(dir, 'log'),
    maxBytes: LOG_BUDGET_BYTES,
    maxAgeMs: LOG_MAX_AGE_MS,
  });
  const sameBatch = await RawFile.create(join(dir, 'raw-same-batch'));
  const sameBytes = await RawFile.create(join(dir, 'raw-same-bytes'));
  const batchData = Buffer.concat(records);
  const meters = { log: new Meter(), sameBatch: new Meter(), sameBytes: new Meter() };
  try {
    for (let slice = 0; slice < slices; slice++) {
      await meters.sameBatch.slice(sliceMs, (until) => sameBatch.syncUntil(batchData, until));
      await meters.log.slice(sliceMs, (until) => appendUntil(log, streams, records, appenders, until));
      const { bytesWritten, dataSyncs } = log.stats();
      const logData = randomBytes(Math.round(bytesWritten / dataSyncs));
      await meters.sameBytes.slice(sliceMs, (until) => sameBytes.syncUntil(logData, until));
    }
  } finally {
    await Promise.all([log.close(), sameBatch.close(), sameBytes.close()]);
  }
  const { dataSyncs, bytesWritten } = log.stats();
  const pointsPerSync = meters.log.units / dataSyncs;
  return {
    log: meters.log.rate,
    pointsPerSync,
    bytesPerSync: bytesWritten / dataSyncs,
    rawSameBatch: meters.sameBatch.rate * records.length,
    rawSameBytes: meters.sameBytes.rate * pointsPerSync,
    diskBytesPerPoint: log.bytesOnDisk() / meters.log.units,
  };
}

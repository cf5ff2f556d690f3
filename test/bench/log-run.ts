/**
 * `npm run bench:log`: durable points/s of the OT agent's stream log (agents/ot/log) for ~60-byte
 * records at 10, 100 and 1000 records per append call, spread over many streams, by one appender
 * and by several at once, against the bare ceiling measured in the same run on the same disk: a
 * raw append of the same bytes to one file plus fdatasync, in the same batch sizes. Also the bytes
 * the log keeps on disk per point. Each measurement runs for a fixed time; the whole run stays
 * under a minute.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStreamLog, type StreamLog } from '../../agents/ot/log/stream-log.ts';
import { formatCount, formatRatio, formatTable } from './table.ts';

/** A point as the agent encodes it: topic id, value, quality and timestamps come to about 60 bytes. */
const RECORD_BYTES = 60;
/** An OT agent has hundreds of streams. */
const STREAMS = 200;
const BATCH_SIZES = [10, 100, 1000] as const;
/** Sources appending at once (one per PLC connection, say). */
const CONCURRENT_APPENDERS = 8;
/**
 * A VM disk's fdatasync latency drifts by 2-3x from second to second (writeback of earlier runs),
 * so the log and its ceilings are measured in alternating short slices and summed: the drift then
 * falls on all three alike. 6 configurations x 3 meters x 10 x 150 ms = 27 s.
 */
const SLICES = 10;
const SLICE_MS = 150;
/** A budget no run reaches, so retention does not take part in the figures. */
const LOG_BUDGET_BYTES = 8 * 1024 * 1024 * 1024;

/** Work done and time taken, summed over slices. */
class Meter {
  units = 0;
  seconds = 0;

  async slice(work: (until: number) => Promise<number>): Promise<void> {
    const started = performance.now();
    this.units += await work(started + SLICE_MS);
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

interface Row {
  readonly log: number;
  readonly pointsPerSync: number;
  readonly rawSameBatch: number;
  readonly rawSameBytes: number;
  readonly diskBytesPerPoint: number;
}

async function measure(dir: string, batch: number, appenders: number): Promise<Row> {
  const log = await openStreamLog({
    dir: join(dir, 'log'),
    maxBytes: LOG_BUDGET_BYTES,
    maxAgeMs: 24 * 3_600_000,
  });
  const streams = Array.from({ length: STREAMS }, (_, index) => `bench/press-${index % 20}/temps/t${index}`);
  const records = Array.from({ length: batch }, () => randomBytes(RECORD_BYTES));
  const sameBatch = await RawFile.create(join(dir, 'raw-same-batch'));
  const sameBytes = await RawFile.create(join(dir, 'raw-same-bytes'));
  const batchData = randomBytes(batch * RECORD_BYTES);
  const meters = { log: new Meter(), sameBatch: new Meter(), sameBytes: new Meter() };
  for (let slice = 0; slice < SLICES; slice++) {
    await meters.sameBatch.slice((until) => sameBatch.syncUntil(batchData, until));
    await meters.log.slice((until) => appendUntil(log, streams, records, appenders, until));
    const { bytesWritten, dataSyncs } = log.stats();
    const logData = randomBytes(Math.round(bytesWritten / dataSyncs));
    await meters.sameBytes.slice((until) => sameBytes.syncUntil(logData, until));
  }
  const { dataSyncs } = log.stats();
  await Promise.all([log.close(), sameBatch.close(), sameBytes.close()]);
  const pointsPerSync = meters.log.units / dataSyncs;
  return {
    log: meters.log.rate,
    pointsPerSync,
    rawSameBatch: meters.sameBatch.rate * batch,
    rawSameBytes: meters.sameBytes.rate * pointsPerSync,
    diskBytesPerPoint: log.bytesOnDisk() / meters.log.units,
  };
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'dmz-bench-log-'));
  try {
    const rows: string[][] = [
      [
        'records/append',
        'appenders',
        'log points/s',
        'points/fdatasync',
        'raw ceiling, same batch',
        'ratio',
        'raw ceiling, same bytes/sync',
        'ratio',
        'disk B/point',
      ],
    ];
    let run = 0;
    for (const batch of BATCH_SIZES) {
      for (const appenders of [1, CONCURRENT_APPENDERS]) {
        const dir = join(root, `run-${run++}`);
        await mkdir(dir, { mode: 0o700 });
        const row = await measure(dir, batch, appenders);
        await rm(dir, { recursive: true, force: true });
        rows.push([
          String(batch),
          String(appenders),
          formatCount(row.log),
          formatCount(row.pointsPerSync),
          formatCount(row.rawSameBatch),
          formatRatio(row.log / row.rawSameBatch),
          formatCount(row.rawSameBytes),
          formatRatio(row.log / row.rawSameBytes),
          row.diskBytesPerPoint.toFixed(1),
        ]);
      }
    }
    const lines = [
      `Stream log, ${RECORD_BYTES}-byte records over ${STREAMS} streams, ${(SLICES * SLICE_MS) / 1000} s per figure in ${SLICES} alternating slices (Node ${process.version}):`,
      '',
      ...formatTable(rows).map((line) => `  ${line}`),
      '',
      '  raw ceiling, same batch: one file, write(records/append x 60 B) + fdatasync, in a loop.',
      '  raw ceiling, same bytes/sync: the same, with the bytes the log wrote per fdatasync (its framing and',
      '  group commit included): the ratio there is what the log itself costs.',
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

await main();

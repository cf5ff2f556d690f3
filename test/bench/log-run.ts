/**
 * `npm run bench:log`: durable points/s of the OT agent's stream log (agents/ot/log) for ~60-byte
 * records at 10, 100 and 1000 records per append call, spread over many streams, by one appender
 * and by several at once, against the bare ceiling measured in the same run on the same disk: a
 * raw append of the same bytes to one file plus fdatasync, in the same batch sizes. Also the bytes
 * the log keeps on disk per point. Each measurement runs for a fixed time; the whole run stays
 * under a minute.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { measureDurableAppends } from './durable-append.ts';
import { formatCount, formatRatio, formatTable } from './table.ts';

/** A point as the agent encodes it: topic id, value, quality and timestamps come to about 60 bytes. */
const RECORD_BYTES = 60;
/** An OT agent has hundreds of streams. */
const STREAMS = 200;
const BATCH_SIZES = [10, 100, 1000] as const;
/** Sources appending at once (one per PLC connection, say). */
const CONCURRENT_APPENDERS = 8;
/** Alternating slices (durable-append.ts says why): 6 configurations x 3 meters x 10 x 150 ms = 27 s. */
const SLICES = 10;
const SLICE_MS = 150;

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
        const row = await measureDurableAppends(dir, {
          records: Array.from({ length: batch }, () => randomBytes(RECORD_BYTES)),
          streams: Array.from({ length: STREAMS }, (_, index) => `bench/press-${index % 20}/temps/t${index}`),
          appenders,
          slices: SLICES,
          sliceMs: SLICE_MS,
        });
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

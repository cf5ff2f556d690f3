import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { INDEX_STRIDE_BYTES, MAX_STREAMS_READ_RECORDS } from '../../../../agents/ot/log/limits.ts';
import { LOG_ERROR_CODES } from '../../../../agents/ot/log/log-errors.ts';
import type { LogRecord, StreamLog, StreamsCursor } from '../../../../agents/ot/log/stream-log.ts';
import { makeTempDir, openTestLog, recordFor, recordsFor, rejectionCode } from './log-fixture.ts';

/** One segment holds the whole test, thousands of streams interleaved, as a plant's log does. */
const PLANT_LOG = { maxBytes: 64 * 1024 * 1024, segmentBytes: 4 * 1024 * 1024 } as const;
/** Many segments of a few hundred streams each, so reads continue across segment ends. */
const SEGMENTED_LOG = { maxBytes: 64 * 1024 * 1024, segmentBytes: 64 * 1024 } as const;
/** The largest frame the tests write: three records of up to 60 bytes. */
const LARGEST_FRAME_BYTES = 31 + 3 * (2 + 60);

function tags(count: number): string[] {
  return Array.from({ length: count }, (_, index) => `press-7/line1/tag${index}`);
}

/** `ticks` rounds of one append per stream, `perAppend(stream index)` records each, as tags sampled together. */
async function writeTicks(
  log: StreamLog,
  streams: readonly string[],
  ticks: number,
  perAppend: (index: number) => number = () => 1,
): Promise<void> {
  for (let tick = 0; tick < ticks; tick++) {
    await Promise.all(
      streams.map((stream, index) =>
        log.append(stream, recordsFor(stream, log.lastSeq(stream) + 1, perAppend(index))),
      ),
    );
  }
}

function seqsOf(records: readonly LogRecord[]): number[] {
  return records.map((record) => record.seq);
}

function range(first: number, last: number): number[] {
  return Array.from({ length: Math.max(0, last - first + 1) }, (_, index) => first + index);
}

describe('stream log - reading many streams in one pass', () => {
  it('reads thousands of one-record-per-append streams walking each byte of the range once', async (t) => {
    const log = await openTestLog(await makeTempDir(t), PLANT_LOG);
    const streams = tags(3000);
    await writeTicks(log, streams, 5);
    const logBytes = log.stats().bytesWritten;

    const before = log.stats();
    const all = await log.readStreams(
      new Map(streams.map((stream) => [stream, 1])),
      MAX_STREAMS_READ_RECORDS,
    );
    const scanned = log.stats().bytesScanned - before.bytesScanned;
    assert.equal(all.more, false);
    assert.equal(all.streams.size, streams.length);
    for (const stream of streams) {
      const result = all.streams.get(stream);
      assert.equal(result?.gap, undefined);
      assert.deepEqual(seqsOf(result?.records ?? []), [1, 2, 3, 4, 5], stream);
      assert.deepEqual(result?.records[4]?.bytes, recordFor(stream, 5));
      assert.equal(all.next.seqs.get(stream), 6);
    }
    // One walk of the log, not one per stream (3000 x the log, as reading them one by one costs).
    assert.ok(scanned <= logBytes, `${scanned} bytes scanned for a log of ${logBytes}`);
    assert.equal(log.stats().segments, 1);
    const frames = log.stats().framesScanned - before.framesScanned;
    assert.ok(frames <= 3000 * 5 + 3000, `${frames} frames walked: each record and definition at most once`);

    // From the middle: the last two ticks, and at most one index stride before them.
    const tail = log.stats();
    const lastTwo = await log.readStreams(
      new Map(streams.map((stream) => [stream, 4])),
      MAX_STREAMS_READ_RECORDS,
    );
    const tailScanned = log.stats().bytesScanned - tail.bytesScanned;
    assert.ok(streams.every((stream) => seqsOf(lastTwo.streams.get(stream)?.records ?? []).join() === '4,5'));
    assert.ok(
      tailScanned <= (logBytes * 2) / 5 + INDEX_STRIDE_BYTES,
      `${tailScanned} bytes scanned for two fifths of a log of ${logBytes}`,
    );
    // The same records a read of each stream alone returns.
    for (const stream of [streams[0]!, streams[1499]!, streams[2999]!]) {
      assert.deepEqual(all.streams.get(stream), await log.read(stream, 1, 100));
    }
    await log.close();
  });

  it('stops at maxRecords, mid-frame too, and the next read continues exactly, live appends included', async (t) => {
    const log = await openTestLog(await makeTempDir(t), SEGMENTED_LOG);
    const streams = tags(300);
    // 1 to 3 records per append, so a bound can fall inside a frame.
    const perAppend = (index: number) => (index % 3) + 1;
    await writeTicks(log, streams, 10, perAppend);
    const got = new Map(streams.map((stream) => [stream, [] as number[]]));
    const before = log.stats();
    let from: ReadonlyMap<string, number> | StreamsCursor = new Map(streams.map((stream) => [stream, 1]));
    let reads = 0;
    for (let more = true; more; reads++) {
      const result = await log.readStreams(from, 777);
      const count = [...result.streams.values()].reduce((sum, page) => sum + page.records.length, 0);
      if (result.more) assert.equal(count, 777);
      for (const [stream, page] of result.streams) got.get(stream)?.push(...seqsOf(page.records));
      // Live appends between the first reads: a later read takes them too.
      if (reads < 3) await writeTicks(log, streams, 1, perAppend);
      more = result.more || reads < 3;
      from = result.next;
    }
    for (const stream of streams) {
      assert.deepEqual(got.get(stream), range(1, log.lastSeq(stream)), stream);
    }
    const total = [...got.values()].reduce((sum, seqs) => sum + seqs.length, 0);
    assert.equal(total, 300 * 13 * 2);
    assert.ok(reads >= Math.ceil(total / 777), `${reads} reads`);
    // Each read starts at the frame the last one stopped in: the log is walked about once.
    const scanned = log.stats().bytesScanned - before.bytesScanned;
    const logBytes = log.stats().bytesWritten;
    assert.ok(log.stats().segments > 3, `${log.stats().segments} segments`);
    assert.ok(
      scanned <= logBytes + reads * LARGEST_FRAME_BYTES,
      `${scanned} bytes scanned in ${reads} reads for a log of ${logBytes}`,
    );
    await log.close();
  });

  it('reports a gap per stream where retention deleted what was asked, as a read of each does', async (t) => {
    const log = await openTestLog(await makeTempDir(t), { maxBytes: 16 * 1024, segmentBytes: 4096 });
    const gone = 'press-7/gone';
    const partly = 'press-7/partly';
    const kept = 'press-7/kept';
    await log.append(gone, recordsFor(gone, 1, 30));
    for (let seq = 1; seq <= 1000; seq += 20) await log.append(partly, recordsFor(partly, seq, 20));
    await log.append(kept, recordsFor(kept, 1, 3));
    await log.enforceRetention();
    const firstKept = log.firstSeq(partly);
    assert.equal(log.firstSeq(gone), 31);
    assert.ok(firstKept > 21, `retention kept from ${firstKept}`);

    const from = new Map([
      [gone, 1],
      [partly, 5],
      [kept, 1],
      ['press-7/unknown', 1],
    ]);
    const result = await log.readStreams(from, 4096);
    assert.deepEqual([...result.streams.keys()], [gone, partly, kept], 'the streams with a gap or records');
    assert.deepEqual(result.streams.get(gone), {
      gap: { from: 1, to: 30, reason: 'retention' },
      records: [],
      nextSeq: 31,
    });
    assert.deepEqual(result.streams.get(partly)?.gap, { from: 5, to: firstKept - 1, reason: 'retention' });
    assert.deepEqual(seqsOf(result.streams.get(partly)?.records ?? []), range(firstKept, 1000));
    assert.equal(result.streams.get(kept)?.gap, undefined);
    for (const [stream, fromSeq] of from) {
      if (result.streams.has(stream))
        assert.deepEqual(result.streams.get(stream), await log.read(stream, fromSeq, 4096));
    }
    assert.deepEqual(
      [...result.next.seqs],
      [
        [gone, 31],
        [partly, 1001],
        [kept, 4],
        ['press-7/unknown', 1],
      ],
    );
    assert.equal(result.more, false);
    await log.close();
  });

  const REFUSED: [string, ReadonlyMap<string, number>, number, string][] = [
    ['a start of 0', new Map([['press-7/a', 0]]), 10, LOG_ERROR_CODES.read],
    ['a start that is not a whole number', new Map([['press-7/a', 1.5]]), 10, LOG_ERROR_CODES.read],
    ['no records', new Map([['press-7/a', 1]]), 0, LOG_ERROR_CODES.read],
    [
      'more records than one read returns',
      new Map([['press-7/a', 1]]),
      MAX_STREAMS_READ_RECORDS + 1,
      LOG_ERROR_CODES.read,
    ],
  ];
  for (const [name, from, maxRecords, code] of REFUSED) {
    it(`refuses a read of many streams with ${name}`, async (t) => {
      const log = await openTestLog(await makeTempDir(t));
      await log.append('press-7/a', recordsFor('press-7/a', 1, 3));
      assert.equal(await rejectionCode(log.readStreams(from, maxRecords)), code);
      await log.close();
    });
  }

  it('refuses a read of many streams once closed', async (t) => {
    const log = await openTestLog(await makeTempDir(t));
    await log.close();
    assert.equal(
      await rejectionCode(log.readStreams(new Map([['press-7/a', 1]]), 1)),
      LOG_ERROR_CODES.closed,
    );
  });
});

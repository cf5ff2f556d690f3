import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { makeTempDir, openTestLog, readAll, recordFor, recordsFor } from './log-fixture.ts';

const SIZE_LIMITED = { maxBytes: 16 * 1024, segmentBytes: 4096 } as const;

describe('stream log - retention', () => {
  it('deletes the oldest segments over maxBytes and reports the deleted range as a gap', async (t) => {
    const dir = await makeTempDir(t);
    let log = await openTestLog(dir, SIZE_LIMITED);
    const stream = 'press-7/temps/t1';
    for (let seq = 1; seq <= 3000; seq += 10) await log.append(stream, recordsFor(stream, seq, 10));
    const outcome = await log.enforceRetention();
    assert.ok(log.stats().segmentsDeleted > 0 || outcome.deletedSegments > 0);
    assert.ok(log.bytesOnDisk() <= SIZE_LIMITED.maxBytes, `${log.bytesOnDisk()} bytes on disk`);
    const firstSeq = log.firstSeq(stream);
    assert.ok(firstSeq > 1 && firstSeq <= 3000, `first retained ${firstSeq}`);

    const checkGap = async (): Promise<void> => {
      const page = await log.read(stream, 1, 5);
      assert.deepEqual(page.gap, { from: 1, to: firstSeq - 1, reason: 'retention' });
      assert.deepEqual(
        page.records.map((record) => record.seq),
        [firstSeq, firstSeq + 1, firstSeq + 2, firstSeq + 3, firstSeq + 4],
      );
      assert.deepEqual(page.records[0]!.bytes, recordFor(stream, firstSeq));
      // Reading from inside the kept range has no gap, and everything kept is one unbroken run.
      assert.equal((await log.read(stream, firstSeq, 5)).gap, undefined);
      const kept = await readAll(log, stream, firstSeq);
      assert.deepEqual(
        kept.map((record) => record.seq),
        Array.from({ length: 3000 - firstSeq + 1 }, (_, index) => firstSeq + index),
      );
    };
    await checkGap();
    await log.close();
    log = await openTestLog(dir, SIZE_LIMITED);
    assert.equal(log.firstSeq(stream), firstSeq);
    await checkGap();
    await log.close();
  });

  it('keeps within maxBytes on its own as appends seal segments', async (t) => {
    const log = await openTestLog(await makeTempDir(t), SIZE_LIMITED);
    const stream = 'press-7/steady';
    for (let seq = 1; seq <= 5000; seq += 10) await log.append(stream, recordsFor(stream, seq, 10));
    await log.close();
    // The retention that follows every seal ran inside the log; close waited for it.
    assert.ok(log.bytesOnDisk() <= SIZE_LIMITED.maxBytes, `${log.bytesOnDisk()} bytes on disk`);
    assert.ok(log.stats().segmentsDeleted > 0);
  });

  it('deletes segments whose newest record is older than maxAgeMs', async (t) => {
    const dir = await makeTempDir(t);
    let now = 1_000_000;
    const clock = { now: () => now, maxAgeMs: 60_000 };
    let log = await openTestLog(dir, clock);
    const stream = 'press-7/aged';
    // Old records, then (after a quarter of maxAgeMs, which seals the segment) fresh ones.
    await log.append(stream, recordsFor(stream, 1, 50));
    now += 20_000;
    await log.append(stream, recordsFor(stream, 51, 50));
    assert.equal((await log.enforceRetention()).deletedSegments, 0, 'nothing is older than maxAgeMs yet');
    now += 45_000;
    assert.equal((await log.enforceRetention()).deletedSegments, 1);
    assert.equal(log.firstSeq(stream), 51);
    assert.deepEqual((await log.read(stream, 1, 1)).gap, { from: 1, to: 50, reason: 'retention' });
    await log.close();

    // An idle log ages out too: its active segment is sealed and deleted, the counter kept.
    now += 120_000;
    log = await openTestLog(dir, clock);
    assert.equal(log.firstSeq(stream), 101);
    assert.equal(log.lastSeq(stream), 100);
    const page = await log.read(stream, 40, 10);
    assert.deepEqual(page, { gap: { from: 40, to: 100, reason: 'retention' }, records: [], nextSeq: 101 });
    assert.deepEqual(await log.append(stream, [recordFor(stream, 101)]), { firstSeq: 101, lastSeq: 101 });
    await log.close();
    const files = (await readdir(dir)).filter((name) => name.endsWith('.seg'));
    assert.equal(files.length, 1, `only the new segment is left: ${files.join(', ')}`);
  });
});

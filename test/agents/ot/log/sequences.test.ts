import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { makeTempDir, openTestLog, readAll, recordFor, recordsFor } from './log-fixture.ts';

describe('stream log - sequence numbers', () => {
  it('numbers each stream from 1, independently of the others', async (t) => {
    const log = await openTestLog(await makeTempDir(t));
    assert.deepEqual(await log.append('press-7/temps/t1', recordsFor('press-7/temps/t1', 1, 3)), {
      firstSeq: 1,
      lastSeq: 3,
    });
    assert.deepEqual(await log.append('press-7/temps/t2', recordsFor('press-7/temps/t2', 1, 1)), {
      firstSeq: 1,
      lastSeq: 1,
    });
    assert.deepEqual(await log.append('press-7/temps/t1', recordsFor('press-7/temps/t1', 4, 2)), {
      firstSeq: 4,
      lastSeq: 5,
    });
    assert.equal(log.lastSeq('press-7/temps/t1'), 5);
    assert.equal(log.lastSeq('press-7/temps/t2'), 1);
    assert.equal(log.lastSeq('press-7/temps/never'), 0);
    assert.deepEqual(log.streams(), ['press-7/temps/t1', 'press-7/temps/t2']);
    await log.close();
  });

  it('numbers concurrent appends to one stream in call order, and reads them back in that order', async (t) => {
    const log = await openTestLog(await makeTempDir(t));
    const stream = 'press-7/flow';
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, call) => log.append(stream, recordsFor(stream, call * 2 + 1, 2))),
    );
    results.forEach((result, call) =>
      assert.deepEqual(result, { firstSeq: call * 2 + 1, lastSeq: call * 2 + 2 }),
    );
    const records = await readAll(log, stream);
    assert.deepEqual(
      records.map((record) => record.seq),
      Array.from({ length: 120 }, (_, index) => index + 1),
    );
    for (const record of records) assert.deepEqual(record.bytes, recordFor(stream, record.seq));
    await log.close();
  });

  it('continues every stream after a restart, across sealed segments', async (t) => {
    const dir = await makeTempDir(t);
    let log = await openTestLog(dir);
    const streams = ['line-1/a', 'line-1/b', 'line-1/c'];
    for (let round = 0; round < 40; round++) {
      for (const stream of streams) await log.append(stream, recordsFor(stream, round * 5 + 1, 5));
    }
    assert.ok(log.stats().segmentsSealed > 0, 'the test crosses segments');
    await log.close();
    log = await openTestLog(dir);
    for (const stream of streams) {
      assert.equal(log.lastSeq(stream), 200);
      assert.deepEqual(await log.append(stream, [recordFor(stream, 201)]), { firstSeq: 201, lastSeq: 201 });
    }
    await log.close();
    log = await openTestLog(dir);
    assert.deepEqual(log.streams(), streams);
    for (const stream of streams) assert.equal((await readAll(log, stream)).length, 201);
    await log.close();
  });

  it('never reuses a number once retention deleted all of a stream, even after a restart', async (t) => {
    const dir = await makeTempDir(t);
    const limits = { maxBytes: 16 * 1024, segmentBytes: 4096 };
    let log = await openTestLog(dir, limits);
    const quiet = 'press-7/rarely';
    const busy = 'press-7/often';
    await log.append(quiet, recordsFor(quiet, 1, 7));
    for (let seq = 1; seq <= 2000; seq += 20) await log.append(busy, recordsFor(busy, seq, 20));
    await log.enforceRetention();
    assert.equal(log.firstSeq(quiet), 8, 'nothing of the quiet stream is retained');
    assert.equal(log.lastSeq(quiet), 7);
    await log.close();

    log = await openTestLog(dir, limits);
    assert.equal(log.lastSeq(quiet), 7);
    assert.equal(log.firstSeq(quiet), 8);
    assert.deepEqual(await log.append(quiet, [recordFor(quiet, 8)]), { firstSeq: 8, lastSeq: 8 });
    assert.equal(log.lastSeq(busy), 2000);
    await log.close();
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { StreamLog } from '../../../../agents/ot/log/stream-log.ts';
import { makeTempDir, openTestLog, readAll, recordFor, recordsFor } from './log-fixture.ts';

const STREAMS = ['press-7/temps/t1', 'press-7/temps/t2', 'press-7/pressure'];

/** Interleaved appends of 1 to 9 records to three streams, across many 4 KiB segments. */
async function fillLog(log: StreamLog): Promise<Map<string, number>> {
  const last = new Map(STREAMS.map((stream) => [stream, 0]));
  for (let call = 0; call < 240; call++) {
    const stream = STREAMS[call % 3]!;
    const count = (call % 9) + 1;
    const from = last.get(stream)! + 1;
    await log.append(stream, recordsFor(stream, from, count));
    last.set(stream, from + count - 1);
  }
  return last;
}

async function checkEveryStart(log: StreamLog, last: Map<string, number>): Promise<void> {
  for (const stream of STREAMS) {
    const lastSeq = last.get(stream)!;
    for (const from of [1, 2, 3, 17, 100, Math.floor(lastSeq / 2), lastSeq - 1, lastSeq]) {
      const page = await log.read(stream, from, 50);
      assert.equal(page.gap, undefined);
      const expected = Array.from({ length: Math.min(50, lastSeq - from + 1) }, (_, index) => from + index);
      assert.deepEqual(
        page.records.map((record) => record.seq),
        expected,
        `${stream} from ${from}`,
      );
      for (const record of page.records) assert.deepEqual(record.bytes, recordFor(stream, record.seq));
      assert.equal(page.nextSeq, from + expected.length);
    }
  }
}

describe('stream log - read', () => {
  it('reads from any sequence number, across segments, before and after a restart', async (t) => {
    const dir = await makeTempDir(t);
    let log = await openTestLog(dir);
    const last = await fillLog(log);
    assert.ok(log.stats().segments > 5, `${log.stats().segments} segments`);
    await checkEveryStart(log, last);
    await log.close();
    log = await openTestLog(dir);
    await checkEveryStart(log, last);
    for (const stream of STREAMS) assert.equal((await readAll(log, stream)).length, last.get(stream));
    await log.close();
  });

  it('reads nothing past the last record, and nothing of an unknown stream', async (t) => {
    const log = await openTestLog(await makeTempDir(t));
    await log.append('press-7/a', recordsFor('press-7/a', 1, 3));
    assert.deepEqual(await log.read('press-7/a', 4, 10), { gap: undefined, records: [], nextSeq: 4 });
    assert.deepEqual(await log.read('press-7/unknown', 1, 10), { gap: undefined, records: [], nextSeq: 1 });
    await log.close();
  });

  it('returns only records whose append has resolved', async (t) => {
    const log = await openTestLog(await makeTempDir(t));
    const stream = 'press-7/live';
    await log.append(stream, [recordFor(stream, 1)]);
    const pending = log.append(stream, [recordFor(stream, 2)]);
    const before = log.read(stream, 1, 10);
    assert.equal(log.lastSeq(stream), 1);
    await pending;
    assert.deepEqual(
      (await before).records.map((record) => record.seq),
      [1],
    );
    assert.deepEqual(
      (await log.read(stream, 1, 10)).records.map((record) => record.seq),
      [1, 2],
    );
    await log.close();
  });

  it('a long replay across indexed segments is intact and does not hold back live appends', async (t) => {
    const log = await openTestLog(await makeTempDir(t), {
      maxBytes: 64 * 1024 * 1024,
      segmentBytes: 1024 * 1024,
    });
    const history = 'press-7/history';
    for (let seq = 1; seq <= 40_000; seq += 1000) await log.append(history, recordsFor(history, seq, 1000));
    let replayDone = false;
    let appendsDuringReplay = 0;
    const replay = (async () => {
      for (let next = 1; next <= 40_000;) {
        const page = await log.read(history, next, 100);
        for (const record of page.records) {
          assert.equal(record.seq, next++);
          assert.deepEqual(record.bytes, recordFor(history, record.seq));
        }
      }
      replayDone = true;
    })();
    const live = (async () => {
      for (let seq = 1; !replayDone; seq++) {
        await log.append('press-7/live', [recordFor('press-7/live', seq)]);
        if (!replayDone) appendsDuringReplay++;
      }
    })();
    await Promise.all([replay, live]);
    assert.ok(appendsDuringReplay > 0, 'live appends resolved while the replay ran');
    await log.close();
  });
});

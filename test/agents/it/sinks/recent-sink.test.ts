/**
 * The recent-values sink in memory and on disk: the Sink contract (order, refusals that change
 * nothing), its bounds (entries per topic, age, the current value kept), history after an id, and
 * its snapshot: a clean reopen keeps the epoch and every entry, a SIGKILL reopens at the last
 * snapshot with a new epoch, a damaged snapshot is refused by name.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import type { RecentSinkOptions } from '../../../../agents/it/sinks/recent-sink.ts';
import { SNAPSHOT_FILE } from '../../../../agents/it/sinks/recent-snapshot.ts';
import { CRASH_TOPIC } from './recent-crash-settings.ts';
import { recentStoreDir } from './recent-fixture.ts';
import { pointEntry, pointFor, TEST_DAY_MS } from './sink-fixture.ts';

const TEMP = 'press-7/line1/temp';
const LEVEL = 'press-7/line2/level';
const range = (topic: string, first: number, count: number) =>
  Array.from({ length: count }, (_, index) => pointEntry(topic, first + index));

const open = async (t: TestContext, options: Partial<RecentSinkOptions> = {}) =>
  (await recentStoreDir(t)).open(options);

describe('agents/it/sinks/recent-sink - current values and a bounded history', () => {
  it('takes each topic in sequence and refuses a write out of order whole', async (t) => {
    const sink = await open(t);
    await sink.write([...range(TEMP, 1, 3), ...range(LEVEL, 1, 2)]);
    assert.deepEqual(
      [...sink.cursors()],
      [
        [TEMP, 3],
        [LEVEL, 2],
      ],
    );
    await assert.rejects(sink.write([pointEntry(TEMP, 4), pointEntry(LEVEL, 9)]), {
      code: 'AGENT_ERR_SINK_ORDER',
    });
    assert.equal(sink.lastSeq(TEMP), 3, 'nothing of the refused write was taken');
    assert.equal(sink.latestId, 5);
  });

  it('keeps at most its entries per topic, and the current value whatever it evicts', async (t) => {
    const sink = await open(t, { maxEntriesPerTopic: 4 });
    await sink.write(range(TEMP, 1, 10));
    const [summary] = sink.summaries(TEMP);
    assert.equal(summary?.held, 4);
    assert.deepEqual(summary?.current?.entry, pointEntry(TEMP, 10));
    const page = sink.history({ filter: '#', afterId: 0, limit: 100 });
    assert.deepEqual(
      page.entries.map(({ entry }) => (entry.kind === 'point' ? entry.point.seq : 0)),
      [7, 8, 9, 10],
    );
    assert.equal(page.truncated, true, 'a cursor of 0 missed what was evicted');
    assert.equal(sink.history({ filter: '#', afterId: 6, limit: 100 }).truncated, false);
  });

  it('evicts by source time past maxAge, on its own clock', async (t) => {
    let now = TEST_DAY_MS;
    const sink = await open(t, { maxAgeMs: 10_000, now: () => now });
    await sink.write(range(TEMP, 1, 5)); // source times TEST_DAY_MS + 1..5 s
    now = TEST_DAY_MS + 13_500;
    const [summary] = sink.summaries('#');
    assert.equal(summary?.held, 2, 'seq 4 and 5 are within 10 s');
    assert.equal(summary?.current?.id, 5);
  });

  it('pages the history after an id, by filter, with more', async (t) => {
    const sink = await open(t);
    await sink.write([...range(TEMP, 1, 3), ...range(LEVEL, 1, 3)]);
    const first = sink.history({ filter: 'press-7/line1/#', afterId: 0, limit: 2 });
    assert.deepEqual(
      first.entries.map((held) => held.id),
      [1, 2],
    );
    assert.equal(first.more, true);
    const next = sink.history({ filter: 'press-7/line1/#', afterId: 2, limit: 2 });
    assert.deepEqual(
      next.entries.map((held) => held.id),
      [3],
    );
    assert.equal(next.more, false);
    const fromTime = sink.history({
      filter: '#',
      afterId: 0,
      fromMs: pointFor(TEMP, 3).sourceTime,
      limit: 10,
    });
    assert.deepEqual(
      fromTime.entries.map((held) => held.id),
      [3, 6],
    );
  });

  it('follows: a follower gets each accepted entry once, in id order', async (t) => {
    const sink = await open(t);
    const seen: number[] = [];
    const unfollow = sink.follow((entries) => seen.push(...entries.map((held) => held.id)));
    await sink.write(range(TEMP, 1, 2));
    await sink.write(range(TEMP, 3, 2)).catch(() => undefined);
    await assert.rejects(sink.write([pointEntry(TEMP, 9)]));
    unfollow();
    await sink.write(range(TEMP, 5, 1));
    assert.deepEqual(seen, [1, 2, 3, 4]);
  });

  it('a gap moves the cursor and is counted', async (t) => {
    const sink = await open(t);
    await sink.write([
      pointEntry(TEMP, 1),
      { kind: 'gap', topic: TEMP, from: 2, to: 40, reason: 'retention' },
      pointEntry(TEMP, 41),
    ]);
    assert.equal(sink.lastSeq(TEMP), 41);
    assert.equal(sink.summaries(TEMP)[0]?.gaps, 1);
  });
});

describe('agents/it/sinks/recent-sink - the snapshot', () => {
  it('a clean close and reopen keeps the epoch, the cursors and every entry', async (t) => {
    const store = await recentStoreDir(t);
    const first = await store.open();
    await first.write([...range(TEMP, 1, 5), ...range(LEVEL, 1, 2)]);
    const before = first.history({ filter: '#', afterId: 0, limit: 100 });
    await first.close();
    const again = await store.open();
    assert.equal(again.epoch, first.epoch);
    assert.equal(again.latestId, 7);
    assert.deepEqual(
      [...again.cursors()],
      [
        [TEMP, 5],
        [LEVEL, 2],
      ],
    );
    assert.deepEqual(again.history({ filter: '#', afterId: 0, limit: 100 }), before);
    await again.write([pointEntry(TEMP, 6)]);
    assert.equal(again.latestId, 8, 'ids go on, never reused');
  });

  it('after SIGKILL it reopens at its last snapshot, whose cursors are what it holds, in a new epoch', async (t) => {
    const store = await recentStoreDir(t);
    const child = join(import.meta.dirname, 'recent-crash-child.ts');
    await assert.rejects(
      promisify(execFile)(process.execPath, ['--import', 'tsx', child, store.dir, '30', '12']),
      {
        signal: 'SIGKILL',
      },
    );
    const reopened = await store.open();
    assert.equal(
      reopened.lastSeq(CRASH_TOPIC),
      30,
      'the 12 points after the snapshot are for the consumer to replay',
    );
    assert.equal(reopened.epoch, 2, "the crashed run's cursors name ids that are issued again");
    assert.equal(reopened.summaries('#')[0]?.held, 30);
    await reopened.write(range(CRASH_TOPIC, 31, 12));
    assert.equal(reopened.lastSeq(CRASH_TOPIC), 42);
  });

  it('refuses a damaged snapshot by name: AGENT_ERR_SINK_CORRUPT', async (t) => {
    const store = await recentStoreDir(t);
    await (await store.open()).close();
    await writeFile(
      join(store.dir, SNAPSHOT_FILE),
      '{"version":1,"epoch":1,"nextId":1,"clean":true,"topics":[{"topic":"a/b"',
    );
    await assert.rejects(
      store.open(),
      (error: Error & { code?: string }) =>
        error.code === 'AGENT_ERR_SINK_CORRUPT' && error.message.includes(SNAPSHOT_FILE),
    );
  });
});

/**
 * The recent-values store's bounds whatever the topic count (a compromised OT agent chooses how
 * many topics it publishes): the store-wide history budget evicts the store's oldest entries and
 * never a topic's current value; the snapshot is written and read in parts, so a store of many
 * entries round-trips with no line longer than one entry, and older whole-document versions open.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { encodeLine } from '../../../../agents/it/sinks/jsonl-format.ts';
import type { RecentSink } from '../../../../agents/it/sinks/recent-sink.ts';
import { SNAPSHOT_FILE } from '../../../../agents/it/sinks/recent-snapshot.ts';
import { recentStoreDir } from './recent-fixture.ts';
import { pointEntries, pointEntry } from './sink-fixture.ts';

const topicNumber = (index: number) => `press-7/plc/area-${index}/temperature`;

/** Every topic's held ids, and its current value's seq. */
function contents(sink: RecentSink) {
  const page = sink.history({ filter: '#', afterId: 0, limit: Number.MAX_SAFE_INTEGER });
  const ids = page.entries.map(({ id }) => id);
  const currents = new Map(
    sink.summaries('#').map(({ topic, current }) => {
      const entry = current?.entry;
      return [topic, entry?.kind === 'point' ? entry.point.seq : undefined];
    }),
  );
  return { ids, currents, truncated: page.truncated };
}

describe('agents/it/sinks/recent-sink - the store-wide history budget', () => {
  it('holds at most its budget across topics, evicting the oldest first and never a current value', async (t) => {
    const store = await recentStoreDir(t);
    const sink = await store.open({ maxEntries: 50 });
    // A quiet topic first, then 30 busy ones, 10 entries each, interleaved: 301 entries.
    await sink.write([pointEntry('press-7/quiet', 1)]);
    for (let round = 1; round <= 10; round++) {
      await sink.write(Array.from({ length: 30 }, (_, index) => pointEntry(topicNumber(index), round)));
    }
    assert.equal(sink.entryCount, 50);
    const { ids, currents, truncated } = contents(sink);
    assert.deepEqual(
      ids,
      Array.from({ length: 50 }, (_, index) => 252 + index),
      'the 50 newest ids',
    );
    assert.equal(truncated, true, 'a cursor of 0 is told it missed entries');
    assert.equal(currents.size, 31);
    assert.equal(currents.get('press-7/quiet'), 1, 'the quiet topic still shows its value');
    for (let index = 0; index < 30; index++) assert.equal(currents.get(topicNumber(index)), 10);
    assert.equal(sink.summaries('press-7/quiet')[0]?.held, 0);
  });

  it('opens a snapshot saved under a larger budget within the smaller one', async (t) => {
    const store = await recentStoreDir(t);
    const first = await store.open();
    await first.write([...pointEntries('press-7/a', 1, 40), ...pointEntries('press-7/b', 1, 40)]);
    await first.close();
    const again = await store.open({ maxEntries: 30 });
    assert.equal(again.entryCount, 30);
    const { ids, currents } = contents(again);
    assert.deepEqual(
      ids,
      Array.from({ length: 30 }, (_, index) => 51 + index),
    );
    assert.deepEqual(
      [...currents],
      [
        ['press-7/a', 40],
        ['press-7/b', 40],
      ],
    );
  });
});

describe('agents/it/sinks/recent-sink - the snapshot in parts', () => {
  it('round-trips a store of many entries, one line per topic or entry', async (t) => {
    const store = await recentStoreDir(t);
    const TOPICS = 400;
    const PER_TOPIC = 250;
    const first = await store.open({ maxEntriesPerTopic: PER_TOPIC });
    for (let index = 0; index < TOPICS; index++) {
      await first.write(pointEntries(topicNumber(index), 1, PER_TOPIC));
    }
    const before = contents(first);
    await first.close();

    const lines = (await readFile(join(store.dir, SNAPSHOT_FILE), 'utf8')).trimEnd().split('\n');
    assert.equal(lines.length, 1 + TOPICS + TOPICS * PER_TOPIC, 'a header, each topic, each entry');
    const longest = lines.reduce((most, line) => Math.max(most, line.length), 0);
    assert.ok(longest < 1_000, `no line holds more than one entry (longest ${longest})`);
    assert.equal((JSON.parse(lines[0] ?? '') as { version: number }).version, 3);

    const again = await store.open({ maxEntriesPerTopic: PER_TOPIC });
    assert.equal(again.entryCount, TOPICS * PER_TOPIC);
    assert.deepEqual(contents(again), before);
    assert.equal(again.epoch, first.epoch, 'a clean close keeps the epoch');
  });

  it('opens a version 2 snapshot (one document) and saves it as version 3', async (t) => {
    const store = await recentStoreDir(t);
    const path = join(store.dir, SNAPSHOT_FILE);
    await (await store.open()).close();
    const line = (seq: number) => encodeLine(pointEntry('press-7/a', seq)).trimEnd();
    const topic = { topic: 'press-7/a', lastSeq: 3, gaps: 0, evictedThrough: 1 };
    const v2 = { version: 2, epoch: 4, nextId: 4, clean: true, origins: [['press-7', ['00000000000000e1']]] };
    await writeFile(
      path,
      `${JSON.stringify({
        ...v2,
        topics: [
          {
            ...topic,
            current: null,
            entries: [
              [2, line(2)],
              [3, line(3)],
            ],
          },
        ],
      })}\n`,
    );
    const old = await store.open();
    assert.equal(old.epoch, 4);
    assert.deepEqual(contents(old).ids, [2, 3]);
    assert.deepEqual(old.logEpochs('press-7'), ['00000000000000e1']);
    await old.close();
    const header = JSON.parse((await readFile(path, 'utf8')).split('\n')[0] ?? '') as Record<string, unknown>;
    assert.deepEqual(header, { ...v2, version: 3, topics: 1 });
  });

  it('refuses a version 3 snapshot cut short: AGENT_ERR_SINK_CORRUPT', async (t) => {
    const store = await recentStoreDir(t);
    const first = await store.open();
    await first.write(pointEntries('press-7/a', 1, 5));
    await first.close();
    const path = join(store.dir, SNAPSHOT_FILE);
    const lines = (await readFile(path, 'utf8')).trimEnd().split('\n');
    await writeFile(path, `${lines.slice(0, -1).join('\n')}\n`);
    await assert.rejects(store.open(), { code: 'AGENT_ERR_SINK_CORRUPT' });
  });
});

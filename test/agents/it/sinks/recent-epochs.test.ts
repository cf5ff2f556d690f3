/**
 * The OT log epochs the recent-values store keeps (sink.ts logEpochs) in its snapshot: taken at
 * the call, between the writes before and after it, so every snapshot (a clean close's or the
 * timer's before a SIGKILL) names the epoch of the cursors it holds.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { SNAPSHOT_FILE } from '../../../../agents/it/sinks/recent-snapshot.ts';
import { waitFor } from '../../../support/wait.ts';
import { recentStoreDir } from './recent-fixture.ts';
import { EPOCH_BLOCK, EPOCHS_TOPIC, epochOfBlock } from './recent-epochs-settings.ts';
import { pointEntries } from './sink-fixture.ts';
import { spawnChild } from '../../../support/child-processes.ts';

const TEMP = EPOCHS_TOPIC;
const OLD = ['00000000000000e1'];
const NEW = ['00000000000000e2', '00000000000000e1'];
/** Blocks the child has in a snapshot before it is killed: enough that the timer ran between many calls. */
const BLOCKS_BEFORE_KILL = 50;

describe('agents/it/sinks/recent-sink - the OT log epochs, in its snapshot', () => {
  it('keeps the newest epochs noted with the cursors, across a clean reopen', async (t) => {
    const store = await recentStoreDir(t);
    const sink = await store.open();
    assert.deepEqual(sink.logEpochs('press-7'), [], 'a new store knows none');
    await sink.noteLogEpochs('press-7', OLD);
    await sink.write(pointEntries(TEMP, 1, 5));
    await sink.noteLogEpochs('press-7', NEW);
    await sink.write(pointEntries(TEMP, 6, 2));
    await sink.noteLogEpochs('press-9', OLD);
    assert.deepEqual(sink.logEpochs('press-7'), NEW);
    await sink.close();
    await assert.rejects(sink.noteLogEpochs('press-7', OLD), { code: 'AGENT_ERR_SINK_CLOSED' });

    const again = await store.open();
    assert.equal(again.lastSeq(TEMP), 7);
    assert.deepEqual(again.logEpochs('press-7'), NEW);
    assert.deepEqual(again.logEpochs('press-9'), OLD);
  });

  it('refuses an epoch list a cursor cannot carry, changing nothing', async (t) => {
    const sink = await (await recentStoreDir(t)).open();
    await sink.noteLogEpochs('press-7', OLD);
    const refused: [string, readonly string[]][] = [
      ['press-7', []],
      ['press-7', ['XYZ']],
      ['press-7', ['00000000000000e1', '00000000000000e1']],
      ['press-7', Array.from({ length: 9 }, (_, index) => epochOfBlock(index + 1))],
      ['press/7', NEW],
    ];
    for (const [agent, epochs] of refused) {
      await assert.rejects(sink.noteLogEpochs(agent, epochs), { code: 'AGENT_ERR_SINK_ENTRY' }, agent);
    }
    assert.deepEqual(sink.logEpochs('press-7'), OLD);
    assert.deepEqual(sink.logEpochs('press/7'), []);
  });

  it('opens a snapshot saved before epochs with none known, and refuses damaged epochs by name', async (t) => {
    const store = await recentStoreDir(t);
    await (await store.open()).close();
    const path = join(store.dir, SNAPSHOT_FILE);
    await writeFile(path, '{"version":1,"epoch":1,"nextId":1,"clean":true,"topics":[]}\n');
    const old = await store.open();
    assert.deepEqual(old.logEpochs('press-7'), []);
    await old.close();

    // Version 3's first line is its header, with the origins.
    const [firstLine] = (await readFile(path, 'utf8')).split('\n');
    const snapshot = JSON.parse(firstLine ?? '') as Record<string, unknown>;
    assert.deepEqual(snapshot['origins'], [], 'saved again as a version with epochs');
    for (const origins of [
      [['press-7', ['e1']]],
      [
        ['press-7', OLD],
        ['press-7', NEW],
      ],
      'none',
    ]) {
      await writeFile(path, JSON.stringify({ ...snapshot, origins }));
      await assert.rejects(store.open(), (error: { code: string; message: string }) => {
        assert.equal(error.code, 'AGENT_ERR_SINK_CORRUPT');
        assert.match(error.message, /recent\.json/);
        return true;
      });
    }
  });

  it('after a SIGKILL, reopens at a snapshot whose epoch is the one its cursor was reached in', async (t) => {
    const store = await recentStoreDir(t);
    const child = spawnChild(
      process.execPath,
      ['--import', 'tsx', join(import.meta.dirname, 'recent-epochs-child.ts'), store.dir],
      { stdio: 'inherit' },
    );
    const exited = once(child, 'exit');
    t.after(() => child.kill('SIGKILL'));
    const path = join(store.dir, SNAPSHOT_FILE);
    await waitFor(
      async () => {
        const text = await readFile(path, 'utf8').catch(() => '');
        // Version 3: a header line, then the topic's record.
        const topic = text.split('\n')[1] ?? '';
        const { lastSeq } = (topic === '' ? {} : JSON.parse(topic)) as { lastSeq?: number };
        return (lastSeq ?? 0) >= BLOCKS_BEFORE_KILL * EPOCH_BLOCK;
      },
      `${BLOCKS_BEFORE_KILL} blocks in a snapshot`,
      60_000,
    );
    child.kill('SIGKILL');
    assert.deepEqual(await exited, [null, 'SIGKILL']);

    const sink = await store.open();
    const held = sink.lastSeq(TEMP);
    const [newest] = sink.logEpochs('press-7');
    assert.ok(newest !== undefined, 'an epoch kept');
    // Epoch b is noted after block b - 1 is written and before block b is.
    const block = Number.parseInt(newest, 16);
    assert.ok(
      held === (block - 1) * EPOCH_BLOCK || held === block * EPOCH_BLOCK,
      `the snapshot names epoch ${block} with the cursor at ${held}`,
    );
    assert.ok(held >= BLOCKS_BEFORE_KILL * EPOCH_BLOCK);
  });
});

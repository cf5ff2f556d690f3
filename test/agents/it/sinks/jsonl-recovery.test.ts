import assert from 'node:assert/strict';
import { appendFile, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CHECKPOINT_FILE, readCheckpoint } from '../../../../agents/it/sinks/jsonl-checkpoint.ts';
import { encodeLine } from '../../../../agents/it/sinks/jsonl-format.ts';
import {
  CHECKPOINT_EVERY_MS,
  MAX_LINE_BYTES,
  SCAN_CHUNK_BYTES,
} from '../../../../agents/it/sinks/jsonl-limits.ts';
import { openJsonLinesSink } from '../../../../agents/it/sinks/jsonl-sink.ts';
import {
  DAY_MS,
  dataFiles,
  makeTempDir,
  pointEntries,
  pointEntry,
  readAllLines,
  rejectionCode,
  TEST_DAY_MS,
} from './sink-fixture.ts';

const A = 'press-7/a';
const FILE = 'points-2026-12-01.jsonl';
const now = (): number => TEST_DAY_MS;

/** A sink directory holding points 1..5 of A, closed cleanly (its checkpoint covers all of it). */
async function fiveClosedPoints(dir: string): Promise<void> {
  const sink = await openJsonLinesSink({ dir, now });
  await sink.write(pointEntries(A, 1, 5));
  await sink.close();
}

const line = (seq: number): string => encodeLine(pointEntry(A, seq));

describe('jsonl sink - torn tail', () => {
  const tails: { name: string; tail: string }[] = [
    { name: 'half a line', tail: line(6).slice(0, 20) },
    { name: 'a whole line but its newline', tail: line(6).slice(0, -1) },
    { name: 'zeros a power loss left', tail: '\0'.repeat(4096) },
    { name: 'zeros, then a newline', tail: `${'\0'.repeat(100)}\n` },
    { name: 'a last line that does not parse', tail: '{"topic":"press-7/a","seq":6,"val\n' },
    { name: 'a tail longer than a line and a read', tail: 'x'.repeat(SCAN_CHUNK_BYTES + MAX_LINE_BYTES) },
  ];

  for (const { name, tail } of tails) {
    it(`cuts ${name} at reopen, and writing goes on after the last whole line`, async (t) => {
      const dir = await makeTempDir(t);
      await fiveClosedPoints(dir);
      const before = await readFile(join(dir, FILE));
      await appendFile(join(dir, FILE), tail);
      const sink = await openJsonLinesSink({ dir, now });
      assert.equal(sink.lastSeq(A), 5, 'a torn line was never acknowledged');
      assert.equal(sink.stats().truncatedBytesAtOpen, Buffer.byteLength(tail));
      assert.deepEqual(await readFile(join(dir, FILE)), before);
      await sink.write([pointEntry(A, 6)]);
      await sink.close();
      assert.deepEqual(
        (await readAllLines(dir)).map((entry) => entry.seq),
        [1, 2, 3, 4, 5, 6],
      );
    });
  }

  it('cuts a torn tail when no checkpoint was ever written (a crash in the first seconds)', async (t) => {
    const dir = await makeTempDir(t);
    await fiveClosedPoints(dir);
    await rm(join(dir, CHECKPOINT_FILE));
    await appendFile(join(dir, FILE), line(6).slice(0, 30));
    const sink = await openJsonLinesSink({ dir, now });
    assert.equal(sink.lastSeq(A), 5);
    assert.equal(sink.stats().truncatedBytesAtOpen, 30);
    await sink.close();
  });
});

describe('jsonl sink - damage', () => {
  const checkpointPath = (dir: string): string => join(dir, CHECKPOINT_FILE);
  const dataPath = (dir: string): string => join(dir, FILE);
  const editCheckpoint = async (
    dir: string,
    edit: (json: Record<string, unknown>) => void,
  ): Promise<void> => {
    const json = JSON.parse(await readFile(checkpointPath(dir), 'utf8')) as Record<string, unknown>;
    edit(json);
    await writeFile(checkpointPath(dir), JSON.stringify(json));
  };
  const cases: { name: string; damage: (dir: string) => Promise<void>; names: (dir: string) => string }[] = [
    {
      name: 'a checkpoint that does not parse',
      damage: (dir) => writeFile(checkpointPath(dir), '{"format":'),
      names: checkpointPath,
    },
    {
      name: 'a checkpoint of an unknown format',
      damage: (dir) => editCheckpoint(dir, (json) => (json.format = 'dmz-jsonl-sink-checkpoint/9')),
      names: checkpointPath,
    },
    {
      name: 'a checkpoint whose cursor is no sequence number',
      damage: (dir) => editCheckpoint(dir, (json) => (json.cursors = [[A, -1]])),
      names: checkpointPath,
    },
    {
      name: 'a checkpoint whose file is gone',
      damage: (dir) => rm(dataPath(dir)),
      names: dataPath,
    },
    {
      name: 'a data file shorter than the checkpoint says',
      damage: (dir) => truncate(dataPath(dir), 10),
      names: dataPath,
    },
    {
      name: 'a bad line after the checkpoint that is not the last',
      damage: (dir) => appendFile(dataPath(dir), `garbage\n${line(6)}`),
      names: dataPath,
    },
    {
      name: 'a whole line after the checkpoint that repeats a sequence',
      damage: (dir) => appendFile(dataPath(dir), line(5)),
      names: dataPath,
    },
    {
      name: 'a line damaged inside, with the checkpoint gone',
      damage: async (dir) => {
        await rm(checkpointPath(dir));
        const text = await readFile(dataPath(dir), 'utf8');
        await writeFile(dataPath(dir), text.replace('"seq":3', '"seq":9'));
      },
      names: dataPath,
    },
    {
      name: "an older day's file that ends torn",
      damage: async (dir) => {
        await rm(checkpointPath(dir));
        await writeFile(join(dir, 'points-2026-11-30.jsonl'), line(1).slice(0, 12), { mode: 0o600 });
      },
      names: (dir) => join(dir, 'points-2026-11-30.jsonl'),
    },
  ];

  for (const { name, damage, names } of cases) {
    it(`refuses ${name} with AGENT_ERR_SINK_CORRUPT naming the file, and changes nothing`, async (t) => {
      const dir = await makeTempDir(t);
      await fiveClosedPoints(dir);
      await damage(dir);
      const files = await dataFiles(dir);
      const before = await Promise.all(files.map((file) => readFile(join(dir, file))));
      for (let attempt = 0; attempt < 2; attempt++) {
        // The second attempt shows the first released its lock.
        await assert.rejects(openJsonLinesSink({ dir, now }), (error: Error & { code?: string }) => {
          assert.equal(error.code, 'AGENT_ERR_SINK_CORRUPT');
          assert.ok(error.message.includes(JSON.stringify(names(dir))), error.message);
          return true;
        });
      }
      assert.deepEqual(await Promise.all(files.map((file) => readFile(join(dir, file)))), before);
    });
  }
});

describe('jsonl sink - checkpoint', () => {
  it('a reopen reads only the lines after the checkpoint, and covers them at once', async (t) => {
    const dir = await makeTempDir(t);
    const sink = await openJsonLinesSink({ dir, now });
    await sink.write(pointEntries(A, 1, 100));
    await sink.close();
    // What a run that died before its next checkpoint leaves: whole lines the checkpoint does not cover.
    const after = `${line(101)}${line(102)}${encodeLine({ kind: 'gap', topic: A, from: 103, to: 110, reason: 'retention' })}`;
    await appendFile(join(dir, FILE), after);

    const reopened = await openJsonLinesSink({ dir, now });
    assert.equal(reopened.lastSeq(A), 110);
    assert.equal(reopened.stats().scannedBytesAtOpen, Buffer.byteLength(after));
    assert.equal(reopened.stats().checkpoints, 1);
    await reopened.close();
    const again = await openJsonLinesSink({ dir, now });
    assert.equal(again.stats().scannedBytesAtOpen, 0);
    assert.equal(again.lastSeq(A), 110);
    await again.close();
  });

  it('without a checkpoint, a reopen rescans every file and finds the same cursors', async (t) => {
    const dir = await makeTempDir(t);
    await fiveClosedPoints(dir);
    await rm(join(dir, CHECKPOINT_FILE));
    const sink = await openJsonLinesSink({ dir, now });
    assert.deepEqual([...sink.cursors()], [[A, 5]]);
    assert.ok(sink.stats().scannedBytesAtOpen > 0);
    await sink.close();
  });

  it('a rescan reads lines that straddle its read chunks', async (t) => {
    const dir = await makeTempDir(t);
    const sink = await openJsonLinesSink({ dir, now });
    for (let first = 1; first <= 6000; first += 1000) await sink.write(pointEntries(A, first, 1000));
    await sink.close();
    await rm(join(dir, CHECKPOINT_FILE));
    const size = (await readFile(join(dir, FILE))).byteLength;
    assert.ok(size > 2 * SCAN_CHUNK_BYTES, `${size} bytes`);
    const reopened = await openJsonLinesSink({ dir, now });
    assert.equal(reopened.lastSeq(A), 6000);
    assert.equal(reopened.stats().scannedBytesAtOpen, size);
    assert.equal(reopened.stats().truncatedBytesAtOpen, 0);
    await reopened.close();
  });

  it(`is rewritten at the first commit ${CHECKPOINT_EVERY_MS} ms after the last`, async (t) => {
    const dir = await makeTempDir(t);
    let clock = TEST_DAY_MS;
    const sink = await openJsonLinesSink({ dir, now: () => clock });
    await sink.write(pointEntries(A, 1, 3));
    clock += CHECKPOINT_EVERY_MS - 1;
    await sink.write([pointEntry(A, 4)]);
    assert.equal(sink.stats().checkpoints, 0);
    clock += 1;
    await sink.write([pointEntry(A, 5)]);
    assert.equal(sink.stats().checkpoints, 1);
    const checkpoint = await readCheckpoint(dir);
    assert.equal(checkpoint?.file, FILE);
    assert.equal(checkpoint.offset, (await readFile(join(dir, FILE))).byteLength);
    assert.deepEqual([...checkpoint.cursors], [[A, 5]]);
    await sink.close();
  });
});

describe('jsonl sink - days', () => {
  it('starts a new file at UTC midnight, and a clock that steps back keeps the newest', async (t) => {
    const dir = await makeTempDir(t);
    const B = 'press-7/b';
    let clock = Date.UTC(2026, 11, 1, 23, 59, 59);
    const sink = await openJsonLinesSink({ dir, now: () => clock });
    await sink.write(pointEntries(A, 1, 3));
    clock += 2000;
    await sink.write([...pointEntries(A, 4, 2), pointEntry(B, 1)]);
    clock -= DAY_MS;
    await sink.write([pointEntry(A, 6)]);
    await sink.close();

    const seqsOf = async (file: string): Promise<unknown[]> =>
      (await readFile(join(dir, file), 'utf8'))
        .split('\n')
        .slice(0, -1)
        .map((text) => {
          const entry = JSON.parse(text) as { topic: string; seq: number };
          return `${entry.topic.slice(-1)}${entry.seq}`;
        });
    assert.deepEqual(await dataFiles(dir), ['points-2026-12-01.jsonl', 'points-2026-12-02.jsonl']);
    assert.deepEqual(await seqsOf('points-2026-12-01.jsonl'), ['a1', 'a2', 'a3']);
    assert.deepEqual(await seqsOf('points-2026-12-02.jsonl'), ['a4', 'a5', 'b1', 'a6']);

    clock = Date.UTC(2026, 11, 3, 8);
    const reopened = await openJsonLinesSink({ dir, now: () => clock });
    assert.deepEqual(
      [...reopened.cursors()],
      [
        [A, 6],
        [B, 1],
      ],
    );
    await reopened.write([pointEntry(B, 2)]);
    await reopened.close();
    assert.deepEqual(await seqsOf('points-2026-12-03.jsonl'), ['b2']);

    await rm(join(dir, CHECKPOINT_FILE));
    const rescanned = await openJsonLinesSink({ dir, now: () => clock });
    assert.deepEqual(
      [...rescanned.cursors()],
      [
        [A, 6],
        [B, 2],
      ],
    );
    assert.equal(await rejectionCode(rescanned.write([pointEntry(A, 6)])), 'AGENT_ERR_SINK_ORDER');
    await rescanned.close();
  });
});

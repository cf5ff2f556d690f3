import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CHECKPOINT_FILE } from '../../../../agents/it/sinks/jsonl-checkpoint.ts';
import { openJsonLinesSink } from '../../../../agents/it/sinks/jsonl-sink.ts';
import type { SinkEntry } from '../../../../agents/it/sinks/sink.ts';
import { RESET_CRASH_EPOCHS, RESET_CRASH_REASON, RESET_CRASH_TOPIC } from './crash-settings.ts';
import { runUntilKilled } from '../../../support/reporting-child.ts';
import { makeTempDir, pointEntries, readAllLines, rejectionCode } from './sink-fixture.ts';

const CHILD = join(import.meta.dirname, 'reset-crash-child.ts');
/** Bound on one run of the child (it starts through tsx in about a second). */
const ROUND_TIMEOUT_MS = 30_000;
const A = 'press-7/line1/a';
const B = 'press-7/line1/b';
const REASON = 'the OT log was restored from an older copy';
const EPOCHS = ['5c1e0f8a9b2d4e67', '00000000000000e1'];

function reset(topic: string, from: number, held: number): SinkEntry {
  return { kind: 'reset', topic, from, held, reason: REASON };
}

/** Per topic, the seqs of its point lines, with `reset from/held` where a reset line stands. */
async function linesByTopic(dir: string): Promise<Record<string, (number | string)[]>> {
  const byTopic: Record<string, (number | string)[]> = {};
  for (const line of await readAllLines(dir)) {
    const reset = line['reset'] as { from: number; held: number } | undefined;
    (byTopic[line['topic'] as string] ??= []).push(
      reset === undefined ? (line['seq'] as number) : `reset ${reset.from}/${reset.held}`,
    );
  }
  return byTopic;
}

describe('jsonl sink - resets and origins', () => {
  it('writes a reset line, takes the cursor back, and keeps it across a reopen, with or without the checkpoint', async (t) => {
    const dir = await makeTempDir(t);
    let sink = await openJsonLinesSink({ dir });
    await sink.write([...pointEntries(A, 1, 9), ...pointEntries(B, 1, 4)]);
    await sink.write([reset(A, 6, 9), ...pointEntries(A, 6, 2), reset(B, 1, 4)]);
    assert.equal(sink.lastSeq(A), 7);
    assert.equal(sink.lastSeq(B), 0);
    assert.deepEqual(sink.cursors(), new Map([[A, 7]]), 'a stream back at its start has no cursor');
    const lines = (await readAllLines(dir)).filter((line) => line['reset'] !== undefined);
    assert.deepEqual(lines[0], { topic: A, reset: { from: 6, held: 9, reason: REASON } });
    await sink.close();

    for (const damage of [() => Promise.resolve(), () => rm(join(dir, CHECKPOINT_FILE))]) {
      await damage();
      sink = await openJsonLinesSink({ dir });
      assert.equal(sink.lastSeq(A), 7);
      assert.equal(sink.lastSeq(B), 0);
      await sink.close();
    }
    sink = await openJsonLinesSink({ dir });
    await sink.write([...pointEntries(A, 8, 1), ...pointEntries(B, 1, 2)]);
    await sink.close();
    assert.deepEqual(await linesByTopic(dir), {
      [A]: [1, 2, 3, 4, 5, 6, 7, 8, 9, 'reset 6/9', 6, 7, 8],
      [B]: [1, 2, 3, 4, 'reset 1/4', 1, 2],
    });
  });

  const REFUSED: [string, SinkEntry[]][] = [
    ['a reset that names the wrong held', [reset(A, 2, 4)]],
    ['a reset that does not go back', [reset(A, 6, 5)]],
    ['a reset to 0', [reset(A, 0, 5)]],
    ['a reset of a stream held at nothing', [reset(B, 1, 0)]],
    ['a point after a reset that does not follow it', [reset(A, 3, 5), ...pointEntries(A, 5, 1)]],
  ];
  for (const [name, entries] of REFUSED) {
    it(`refuses ${name} with AGENT_ERR_SINK_ORDER, writing nothing`, async (t) => {
      const dir = await makeTempDir(t);
      const sink = await openJsonLinesSink({ dir });
      await sink.write(pointEntries(A, 1, 5));
      assert.equal(await rejectionCode(sink.write(entries)), 'AGENT_ERR_SINK_ORDER');
      assert.equal(sink.lastSeq(A), 5);
      await sink.close();
      assert.equal((await readAllLines(dir)).length, 5);
    });
  }

  it("keeps an OT agent's log epochs in its checkpoint, in order with the lines, out of the data files", async (t) => {
    const dir = await makeTempDir(t);
    let sink = await openJsonLinesSink({ dir });
    assert.deepEqual(sink.logEpochs('press-7'), []);
    // A sink with no data file yet: the checkpoint names today's, empty.
    await sink.noteLogEpochs('press-7', EPOCHS);
    const checkpoints = sink.stats().checkpoints;
    await sink.noteLogEpochs('press-7', EPOCHS);
    assert.equal(sink.stats().checkpoints, checkpoints, 'the same epochs again cost nothing');
    await Promise.all([
      sink.write(pointEntries(A, 1, 3)),
      sink.noteLogEpochs('press-8', EPOCHS.slice(1)),
      sink.write(pointEntries(A, 4, 2)),
    ]);
    assert.deepEqual(sink.logEpochs('press-7'), EPOCHS);
    assert.deepEqual(await linesByTopic(dir), { [A]: [1, 2, 3, 4, 5] }, 'only points in the files');
    const checkpoint = JSON.parse(await readFile(join(dir, CHECKPOINT_FILE), 'utf8')) as { origins: unknown };
    assert.deepEqual(checkpoint.origins, [
      ['press-7', EPOCHS],
      ['press-8', EPOCHS.slice(1)],
    ]);
    assert.equal(await rejectionCode(sink.noteLogEpochs('press-7', [])), 'AGENT_ERR_SINK_ENTRY');
    assert.equal(await rejectionCode(sink.noteLogEpochs('press-7', ['XYZ'])), 'AGENT_ERR_SINK_ENTRY');
    assert.equal(await rejectionCode(sink.noteLogEpochs('press/7', EPOCHS)), 'AGENT_ERR_SINK_ENTRY');
    await sink.close();
    sink = await openJsonLinesSink({ dir });
    assert.deepEqual(sink.logEpochs('press-7'), EPOCHS);
    assert.deepEqual(sink.logEpochs('press-8'), EPOCHS.slice(1));
    await sink.close();
    // Without its checkpoint the sink knows no epochs: its cursors are then only checked against the log's end.
    await rm(join(dir, CHECKPOINT_FILE));
    sink = await openJsonLinesSink({ dir });
    assert.equal(sink.lastSeq(A), 5);
    assert.deepEqual(sink.logEpochs('press-7'), []);
    await sink.close();
  });

  it('reads a checkpoint of format 1 (before origins) as holding none', async (t) => {
    const dir = await makeTempDir(t);
    let sink = await openJsonLinesSink({ dir });
    await sink.write(pointEntries(A, 1, 3));
    await sink.close();
    const checkpoint = JSON.parse(await readFile(join(dir, CHECKPOINT_FILE), 'utf8')) as Record<
      string,
      unknown
    >;
    delete checkpoint['origins'];
    await writeFile(
      join(dir, CHECKPOINT_FILE),
      JSON.stringify({ ...checkpoint, format: 'dmz-jsonl-sink-checkpoint/1' }),
    );
    sink = await openJsonLinesSink({ dir });
    assert.equal(sink.lastSeq(A), 3);
    assert.deepEqual(sink.logEpochs('press-7'), []);
    await sink.close();
  });

  it('after kill -9 between a reset and the points after it, holds the reset, the epochs and every acknowledged point', async (t) => {
    // Killed right after the reset was acknowledged, then a few and many points later.
    for (const [round, after] of [0, 4, 60].entries()) {
      const dir = await makeTempDir(t);
      const held = 40 + round;
      const from = 11 + round;
      const acknowledged = await runAndKill(dir, held, from, after);
      const sink = await openJsonLinesSink({ dir });
      const context = `killed ${after} writes after the reset`;
      try {
        assert.ok(sink.lastSeq(RESET_CRASH_TOPIC) >= Math.max(from - 1, acknowledged), context);
        assert.deepEqual(sink.logEpochs('press-7'), RESET_CRASH_EPOCHS, context);
        const lines = await readAllLines(dir);
        const resetAt = lines.findIndex((line) => line['reset'] !== undefined);
        assert.deepEqual(lines[resetAt], {
          topic: RESET_CRASH_TOPIC,
          reset: { from, held, reason: RESET_CRASH_REASON },
        });
        const seqs = (part: typeof lines) => part.filter((line) => 'seq' in line).map((line) => line['seq']);
        assert.deepEqual(
          seqs(lines.slice(0, resetAt)),
          Array.from({ length: held }, (_, i) => i + 1),
        );
        const last = sink.lastSeq(RESET_CRASH_TOPIC);
        assert.deepEqual(
          seqs(lines.slice(resetAt)),
          Array.from({ length: last - from + 1 }, (_, i) => from + i),
          context,
        );
        // The consumer goes on from the cursor: the next point is taken.
        await sink.write(pointEntries(RESET_CRASH_TOPIC, last + 1, 1));
      } finally {
        await sink.close();
      }
    }
  });
});

/** Runs the child until `after` writes past its reset are acknowledged; returns the last acknowledged seq. */
async function runAndKill(dir: string, held: number, from: number, after: number): Promise<number> {
  // The first line says the reset is acknowledged; each one after it, a write past it.
  let reports = -1;
  let last = from - 1;
  await runUntilKilled(CHILD, {
    args: [dir, String(held), String(from)],
    timeoutMs: ROUND_TIMEOUT_MS,
    onLine: (line) => {
      reports++;
      if (line !== 'reset') last = Number(line);
      return reports >= after;
    },
    unfinished: () => `the child did not get ${after} writes past its reset`,
  });
  return last;
}

import assert from 'node:assert/strict';
import { cp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Agent } from '../../../agents/runtime/agent.ts';
import {
  assertRun,
  createAgentPlant,
  fileConsumerAgent,
  simulatorAgent,
  sinkLinesByTopic,
  startAgent,
  waitUntilLogged,
  type AgentPlant,
} from '../../support/agent-plant.ts';
import { waitFor } from '../../support/wait.ts';

const STREAMS = 4;
const READINGS = 300;
const DEADLINE_MS = 60_000;
type Line = Record<string, unknown>;

/**
 * An OT agent's log wiped, or restored from an older copy, while its IT consumer holds a cursor
 * ahead of it (audit of issue 6, finding 3): the log's new points carry numbers the consumer
 * already holds. Each run of the OT agent's simulator logs its streams up to a limit, then stops.
 */
describe('dmz-agent run: an OT log re-created or restored from an older copy', () => {
  let plant: AgentPlant;
  let dir: string;
  let otCredentials: string;
  let itAgent: Agent | undefined;

  before(async () => {
    plant = await createAgentPlant();
    otCredentials = await plant.enroll('ot', 'press-7');
  });
  after(async () => {
    await itAgent?.stop();
    await plant.close();
  });

  /**
   * One run of the OT agent: its simulator logs each stream up to `upTo`; the agent stops once
   * every stream's sink lines are `expected`. Returns them.
   */
  async function runOt(
    upTo: number,
    expected: (lines: readonly Line[]) => boolean,
    what: string,
  ): Promise<Map<string, Line[]>> {
    const ot = await startAgent(
      plant.config(
        simulatorAgent(otCredentials, join(dir, 'ot-state'), {
          interval: '2ms',
          batch: 10,
          limit: upTo,
          generate: { count: STREAMS, signal: 'sine', period: '1s' },
        }),
      ),
    );
    try {
      await waitUntilLogged(ot, STREAMS, upTo, DEADLINE_MS);
      return await sinkWhen(expected, what);
    } finally {
      await ot.stop();
    }
  }

  /** Waits until every stream's sink lines are `expected` (a function of its lines) and returns them. */
  async function sinkWhen(
    expected: (lines: readonly Line[]) => boolean,
    what: string,
  ): Promise<Map<string, Line[]>> {
    const sink = join(dir, 'historian');
    return waitFor(
      async () => {
        const byTopic = await sinkLinesByTopic(sink);
        const streams = [...byTopic].filter(([topic]) => topic.startsWith('press-7/'));
        return streams.length === STREAMS && streams.every(([, lines]) => expected(lines)) && byTopic;
      },
      what,
      DEADLINE_MS,
    ).catch(async (error: unknown) => {
      const counts = [...(await sinkLinesByTopic(sink))].map(([topic, lines]) => `${topic}: ${lines.length}`);
      const consumer = JSON.stringify({ ...itAgent?.status().it?.consumers[0], streams: undefined });
      throw new Error(`${String(error)}; sink ${counts.join(', ')}; consumer ${consumer}`);
    });
  }

  async function startIt(name: string): Promise<void> {
    itAgent = await startAgent(
      plant.config(
        fileConsumerAgent(await plant.enroll('it', name), join(dir, 'it-state'), join(dir, 'historian')),
      ),
    );
  }

  /** The point lines between the reset lines of a stream, and the resets themselves. */
  function runsOf(lines: readonly Line[]): { runs: Line[][]; resets: Line[] } {
    const runs: Line[][] = [[]];
    const resets: Line[] = [];
    for (const line of lines) {
      if (line['reset'] !== undefined) {
        resets.push(line['reset'] as Line);
        runs.push([]);
      } else runs.at(-1)?.push(line);
    }
    return { runs, resets };
  }

  const seqsOf = (run: readonly Line[]) => run.map((line) => line['seq'] as number);
  const lastTime = (run: readonly Line[]) => Date.parse(run.at(-1)?.['sourceTime'] as string);
  const firstTime = (run: readonly Line[]) => Date.parse(run[0]?.['sourceTime'] as string);

  it('wiped: a reset line, then every new point from 1, nothing lost, nothing twice', async () => {
    dir = join(plant.dir, 'wiped');
    await startIt('historian');
    await runOt(READINGS, (lines) => lines.length === READINGS, 'the first run in the sink');

    await rm(join(dir, 'ot-state', 'log'), { recursive: true });
    const byTopic = await runOt(
      READINGS,
      (lines) => runsOf(lines).runs.at(-1)?.length === READINGS && runsOf(lines).resets.length === 1,
      'a reset and the new run in the sink',
    );
    for (const [topic, lines] of byTopic) {
      const { runs, resets } = runsOf(lines);
      assert.equal(resets.length, 1, `${topic}: one reset`);
      assert.deepEqual(resets[0], { from: 1, held: READINGS, reason: resets[0]?.['reason'] }, topic);
      assert.match(String(resets[0]?.['reason']), /re-created/);
      assertRun(seqsOf(runs[0]!), 1, READINGS, `${topic} before the wipe`);
      assertRun(seqsOf(runs[1]!), 1, READINGS, `${topic} after the wipe`);
      assert.ok(
        firstTime(runs[1]!) > lastTime(runs[0]!),
        `${topic}: the points after the reset are the new ones`,
      );
    }
    const consumer = itAgent?.status().it?.consumers[0];
    assert.equal(consumer?.resetsWritten, STREAMS);
    await itAgent?.stop();
    itAgent = undefined;
  });

  it('restored from an older copy that has grown back to the cursor: reset where the copy ends', async () => {
    dir = join(plant.dir, 'restored');
    const log = join(dir, 'ot-state', 'log');
    await startIt('historian-2');
    await runOt(READINGS, (lines) => lines.length === READINGS, 'the first run in the sink');
    await cp(log, `${log}-backup`, { recursive: true });
    await runOt(2 * READINGS, (lines) => lines.length === 2 * READINGS, 'the second run in the sink');

    // The copy holds 1..300; its next run numbers 301..600 again: the cursor's 600, no further.
    await rm(log, { recursive: true });
    await cp(`${log}-backup`, log, { recursive: true });
    const byTopic = await runOt(
      2 * READINGS,
      (lines) => runsOf(lines).runs.at(-1)?.length === READINGS && runsOf(lines).resets.length === 1,
      'a reset and the new run in the sink',
    );
    for (const [topic, lines] of byTopic) {
      const { runs, resets } = runsOf(lines);
      assert.equal(resets.length, 1, `${topic}: one reset`);
      assert.deepEqual(
        resets[0],
        { from: READINGS + 1, held: 2 * READINGS, reason: 'the OT log was restored from an older copy' },
        topic,
      );
      assertRun(seqsOf(runs[0]!), 1, 2 * READINGS, `${topic} before the restore`);
      assertRun(seqsOf(runs[1]!), READINGS + 1, 2 * READINGS, `${topic} after the restore`);
      assert.ok(
        firstTime(runs[1]!) > lastTime(runs[0]!),
        `${topic}: the points after the reset are the new ones`,
      );
    }
  });
});

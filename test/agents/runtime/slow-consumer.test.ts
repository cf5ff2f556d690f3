import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  assertRun,
  createAgentPlant,
  fileConsumerAgent,
  readAgentStatus,
  simulatorAgent,
  sinkLinesByTopic,
  startAgent,
  type AgentPlant,
} from '../../support/agent-plant.ts';
import type { KillableProcess } from '../../support/killable-process.ts';
import { readMetric } from '../../support/metrics.ts';
import { waitFor } from '../../support/wait.ts';

/**
 * The relay's queue per consumer: an eighth of the default, yet more than a burst the OT agent
 * sends after a stall of a few hundred ms on a busy machine, so the healthy consumer never meets it.
 * A stopped reader first fills the kernel's socket buffers (about 4 MB on loopback), then this.
 */
const QUEUE_BYTES = 1024 * 1024;
const STREAMS = 10;
/**
 * 10 streams at 1 kHz for 30 s, about 75 bytes a point (64-byte strings), 750 kB/s: four times the
 * ~5 MB the stopped reader's buffers and queue hold before the relay drops, so a loaded machine
 * that is slow to bring the consumers live still leaves the source running when the reader stops.
 */
const READINGS_PER_STREAM = 30_000;
const TOTAL = STREAMS * READINGS_PER_STREAM;
const LONG_TAG = (letter: string) => letter.repeat(64);

describe('dmz-agent run: a slow IT consumer', () => {
  let plant: AgentPlant;
  const processes: KillableProcess[] = [];

  before(async () => {
    // A grace longer than the test: the relay drops for the slow consumer but never cuts it.
    plant = await createAgentPlant({
      limits: { maxQueuedBytesPerConsumer: QUEUE_BYTES, slowConsumerGraceMs: 60_000 },
    });
  });
  after(async () => {
    for (const agent of processes) agent.killNow();
    await plant.close();
  });

  /** An IT agent as a process of its own (as on its own host), so one's stall is not the other's. */
  async function itAgent(name: string): Promise<KillableProcess> {
    const config = await plant.configFile(
      `${name}.yaml`,
      fileConsumerAgent(
        await plant.enroll('it', name),
        join(plant.dir, `${name}-state`),
        join(plant.dir, `${name}-sink`),
      ),
    );
    const agent = await plant.agentProcess(name, config);
    processes.push(agent);
    return agent;
  }

  const consumerOf = async (name: string) =>
    (await readAgentStatus(join(plant.dir, `${name}-state`)))?.it?.consumers[0];

  it('relay - drops live points for the consumer that stops reading; it still gets every point once by replay, the other loses nothing', async () => {
    const healthy = await itAgent('historian');
    const slow = await itAgent('dashboard');
    healthy.start();
    const slowProcess = slow.start();
    // Both are up before the OT agent logs anything: neither starts with a long replay.
    await waitFor(
      () => healthy.stderrIncludes('connected to the relay') && slow.stderrIncludes('connected to the relay'),
      'both IT agents connected',
      20_000,
      50,
    );
    const ot = await startAgent(
      plant.config(
        simulatorAgent(await plant.enroll('ot', 'press-7'), join(plant.dir, 'ot-state'), {
          interval: '1ms',
          batch: 10,
          limit: READINGS_PER_STREAM,
          generate: { count: STREAMS, signal: 'step', period: '1ms', values: [LONG_TAG('A'), LONG_TAG('B')] },
        }),
      ),
    );
    try {
      await waitFor(
        async () => (await consumerOf('dashboard'))?.state === 'live',
        'the slow consumer live',
        20_000,
        50,
      );

      // It stops reading (a stalled host): the relay's queue for it fills, then live points are dropped.
      process.kill(slowProcess.pid, 'SIGSTOP');
      try {
        await waitFor(
          async () => {
            if (ot.status().ot?.pointsLogged === TOTAL)
              throw new Error('the source finished before the relay dropped anything');
            return (await readMetric(plant.relay!, 'dmz_relay_points_dropped_total')) > 0;
          },
          'the relay dropping live points',
          40_000,
          50,
        );
      } finally {
        process.kill(slowProcess.pid, 'SIGCONT');
      }

      await waitFor(
        async () =>
          (await consumerOf('historian'))?.pointsWritten === TOTAL &&
          (await consumerOf('dashboard'))?.pointsWritten === TOTAL,
        'every point in both sinks',
        90_000,
        200,
      );
      assert.deepEqual(await healthy.stop(), { code: 0, signal: null });
      assert.deepEqual(await slow.stop(), { code: 0, signal: null });
    } finally {
      await ot.stop();
    }

    const slowStats = await consumerOf('dashboard');
    const healthyStats = await consumerOf('historian');
    assert.ok((slowStats?.droppedNotices ?? 0) > 0, 'the slow consumer was told of the drop');
    assert.ok((slowStats?.rounds ?? 0) > 1, 'the slow consumer replayed what was dropped');
    assert.equal(healthyStats?.droppedNotices, 0, 'the healthy consumer lost nothing live');
    for (const name of ['historian', 'dashboard']) {
      const byTopic = await sinkLinesByTopic(join(plant.dir, `${name}-sink`));
      assert.equal(byTopic.size, STREAMS, name);
      for (const [topic, lines] of byTopic) {
        assertRun(
          lines.map((line) => line['seq'] as number),
          1,
          READINGS_PER_STREAM,
          `${name} ${topic}`,
        );
      }
    }
  });
});

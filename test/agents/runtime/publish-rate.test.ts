import assert from 'node:assert/strict';
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
  type AgentPlant,
} from '../../support/agent-plant.ts';
import { readMetric } from '../../support/metrics.ts';
import { waitFor } from '../../support/wait.ts';

/**
 * The relay's per-identity rates, low: 40 streams written at 20 Hz one reading at a time are 800
 * frames a second if each write went as its own frame, four times messagesPerSecond.
 */
const MESSAGES_PER_SECOND = 200;
/** About twice what the points need in bytes, so frames must be cut small and sent in turns. */
const BYTES_PER_SECOND = 64 * 1024;
const MAX_FRAME_BYTES = 16 * 1024;
const STREAMS = 40;
/** 12 s of data at 20 Hz: the IT agent is away for part of it and catches up by replay. */
const READINGS_PER_STREAM = 240;
const TOTAL = STREAMS * READINGS_PER_STREAM;

describe('dmz-agent run: an OT agent faster than the relay rate limits', () => {
  let plant: AgentPlant;
  const agents: Agent[] = [];

  before(async () => {
    plant = await createAgentPlant({
      limits: {
        messagesPerSecond: MESSAGES_PER_SECOND,
        bytesPerSecond: BYTES_PER_SECOND,
        maxFrameBytes: MAX_FRAME_BYTES,
      },
    });
  });
  after(async () => {
    await Promise.all(agents.map((agent) => agent.stop()));
    await plant.close();
  });

  async function historian(): Promise<Agent> {
    const agent = await startAgent(
      plant.config(
        fileConsumerAgent(
          join(plant.dir, 'historian-credentials'),
          join(plant.dir, 'historian-state'),
          join(plant.dir, 'historian-sink'),
        ),
      ),
    );
    agents.push(agent);
    return agent;
  }

  it('relay - the OT agent paces live and replay under messagesPerSecond and bytesPerSecond: never cut, every point in order', async () => {
    await plant.enroll('it', 'historian');
    const ot = await startAgent(
      plant.config(
        simulatorAgent(await plant.enroll('ot', 'press-7'), join(plant.dir, 'ot-state'), {
          interval: '50ms',
          limit: READINGS_PER_STREAM,
          generate: { count: STREAMS, signal: 'ramp' },
        }),
      ),
    );
    agents.push(ot);
    let it = await historian();

    // Away while the source runs, back while it still does: its replay and live data share the budget.
    await waitFor(() => (ot.status().ot?.pointsLogged ?? 0) >= TOTAL / 4, 'a quarter logged', 30_000, 50);
    await it.stop();
    await waitFor(() => (ot.status().ot?.pointsLogged ?? 0) >= TOTAL / 2, 'half logged', 30_000, 50);
    it = await historian();
    /** The sink's lines per stream (lines of no topic, such as the log's origin, left out). */
    const streams = async () =>
      [...(await sinkLinesByTopic(join(plant.dir, 'historian-sink')))].filter(
        ([topic]) => typeof topic === 'string',
      );
    const sunk = async () => (await streams()).reduce((sum, [, lines]) => sum + lines.length, 0);
    // The restarted agent counts what it wrote itself: the sink holds what both wrote.
    await waitFor(async () => (await sunk()) >= TOTAL, 'every point in the sink', 120_000, 200);

    const cuts = await readMetric(plant.relay!, 'dmz_relay_disconnects_total', {
      reason: 'RELAY_ERR_RATE_LIMITED',
    });
    const refused = await readMetric(plant.relay!, 'dmz_relay_frame_errors_total', {
      code: 'RELAY_ERR_RATE_LIMITED',
    });
    const stats = ot.status().ot;
    console.log(
      `publish rate: ${TOTAL} points; sent live ${stats?.pointsSent}, left to the log ${stats?.pointsLeftToReplay}, ` +
        `replayed ${stats?.replay.pointsReplayed}; relay refused ${refused} frames for rate, cut the agent ${cuts} times`,
    );
    assert.equal(cuts, 0, 'the relay cut an agent for rate');
    assert.ok(
      (stats?.pointsLeftToReplay ?? 0) > 0,
      'the budget never held the source back: the test tests nothing',
    );

    const byTopic = await streams();
    assert.equal(byTopic.length, STREAMS);
    for (const [topic, lines] of byTopic) {
      assertRun(
        lines.map((line) => line['seq'] as number),
        1,
        READINGS_PER_STREAM,
        topic,
      );
    }
  });
});

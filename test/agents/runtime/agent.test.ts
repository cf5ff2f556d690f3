import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { Agent } from '../../../agents/runtime/agent.ts';
import type { AgentConfig } from '../../../agents/runtime/config.ts';
import {
  createAgentPlant,
  fileConsumerAgent,
  readSinkLines,
  type AgentPlant,
} from '../../support/agent-plant.ts';
import { waitFor } from '../../support/wait.ts';

const READINGS_PER_POINT = 300;
const POINTS = ['temp', 'count', 'running'];

function simulator(limit: number) {
  return {
    type: 'simulator',
    name: 'line1',
    prefix: 'line1',
    // 300 readings take 3 s: the IT restart and the relay restart fall inside the stream, not after it.
    interval: '10ms',
    batch: 1,
    limit,
    points: [
      { name: 'temp', signal: 'sine', period: '1s', min: 20, max: 80 },
      { name: 'count', signal: 'ramp', min: 0, max: 1000, step: 1 },
      { name: 'running', signal: 'toggle', period: '50ms' },
    ],
  };
}

async function start(config: AgentConfig): Promise<Agent> {
  return Agent.start({ config, configSource: 'agent.yaml', logger: pino({ level: 'silent' }) });
}

/** Per topic, the sequence numbers of the sink's point lines, in file order. */
async function sequences(dir: string): Promise<Map<string, number[]>> {
  const byTopic = new Map<string, number[]>();
  for (const line of await readSinkLines(dir)) {
    if (line['gap'] !== undefined) continue;
    const topic = line['topic'] as string;
    byTopic.set(topic, [...(byTopic.get(topic) ?? []), line['seq'] as number]);
  }
  return byTopic;
}

function assertExactlyOnce(byTopic: Map<string, number[]>, count: number): void {
  assert.deepEqual([...byTopic.keys()].sort(), POINTS.map((point) => `press-7/line1/${point}`).sort());
  for (const [topic, seqs] of byTopic) {
    assert.deepEqual(
      seqs,
      Array.from({ length: count }, (_, index) => index + 1),
      `${topic} in order, once each`,
    );
  }
}

describe('dmz-agent run: OT to IT through a real relay', () => {
  let plant: AgentPlant;
  let otConfig: AgentConfig;
  let itConfig: AgentConfig;
  const sinkDir = () => join(plant.dir, 'historian');

  before(async () => {
    plant = await createAgentPlant();
    otConfig = plant.config({
      credentials: await plant.enroll('ot', 'press-7'),
      state: join(plant.dir, 'ot-state'),
      ot: { sources: [simulator(READINGS_PER_POINT)] },
    });
    itConfig = plant.config(
      fileConsumerAgent(await plant.enroll('it', 'historian'), join(plant.dir, 'it-state'), sinkDir()),
    );
  });
  after(() => plant.close());

  it('delivers every point once, in order, across an IT restart and a relay restart', async () => {
    const ot = await start(otConfig);
    let itAgent = await start(itConfig);
    try {
      await waitFor(
        async () => [...(await sequences(sinkDir())).values()].some((seqs) => seqs.length >= 50),
        'the first points in the sink',
        20_000,
      );
      await itAgent.stop();
      await plant.stopRelay();
      await plant.startRelay();
      itAgent = await start(itConfig);
      await waitFor(
        async () => {
          const byTopic = await sequences(sinkDir());
          return (
            byTopic.size === POINTS.length &&
            [...byTopic.values()].every((seqs) => seqs.length >= READINGS_PER_POINT)
          );
        },
        'every point in the sink',
        30_000,
      );
      assertExactlyOnce(await sequences(sinkDir()), READINGS_PER_POINT);
      const restarted = itAgent;
      await waitFor(
        () => restarted.status().relay.connected && restarted.status().it?.consumers[0]?.state === 'live',
        'the restarted IT agent connected and live',
        10_000,
      );
    } finally {
      await itAgent.stop();
      await ot.stop();
    }
  });
});

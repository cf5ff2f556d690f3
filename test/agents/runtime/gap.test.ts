import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Agent } from '../../../agents/runtime/agent.ts';
import { openStreamLog } from '../../../agents/ot/log/stream-log.ts';
import {
  assertRun,
  createAgentPlant,
  fileConsumerAgent,
  sinkLinesByTopic,
  startAgent,
  type AgentPlant,
} from '../../support/agent-plant.ts';
import { waitFor } from '../../support/wait.ts';

/** The smallest log agent.yaml allows (config.ts: 64KiB segments, a budget of four of them). */
const LOG = { maxBytes: '256KiB', segmentBytes: '64KiB' };
const MAX_LOG_BYTES = 256 * 1024;
const STREAMS = 20;
const READINGS_PER_STREAM = 2_000;
/** About 14 bytes a point on disk: 40,000 points are twice the budget, so retention must delete. */
const TOTAL = STREAMS * READINGS_PER_STREAM;

describe('dmz-agent run: a cursor older than retention', () => {
  let plant: AgentPlant;
  const otState = () => join(plant.dir, 'ot-state');
  const sinkDir = () => join(plant.dir, 'historian');

  before(async () => {
    plant = await createAgentPlant();
  });
  after(() => plant.close());

  it('gets a gap record from 1 to the last deleted sequence, then every retained point once', async () => {
    const otConfig = plant.config({
      credentials: await plant.enroll('ot', 'press-7'),
      state: otState(),
      ot: {
        log: LOG,
        sources: [
          {
            type: 'simulator',
            name: 'line1',
            interval: '1ms',
            batch: 25,
            limit: READINGS_PER_STREAM,
            generate: { count: STREAMS, signal: 'sine', period: '1s' },
          },
        ],
      },
    });
    const itConfig = plant.config(
      fileConsumerAgent(await plant.enroll('it', 'historian'), join(plant.dir, 'it-state'), sinkDir()),
    );

    // No consumer exists while the OT agent logs twice its budget.
    const ot = await startAgent(otConfig);
    let it: Agent | undefined;
    let lastSeqs = new Map<string, number>();
    try {
      await waitFor(() => ot.status().ot?.pointsLogged === TOTAL, `${TOTAL} points logged`, 20_000);
      await waitFor(
        () => (ot.status().ot?.log.bytes ?? Infinity) <= MAX_LOG_BYTES,
        'the log back within its budget',
        5_000,
      );
      lastSeqs = new Map((ot.status().ot?.streams ?? []).map((s) => [s.topic, s.lastSeq] as const));
      assert.equal(lastSeqs.size, STREAMS);

      it = await startAgent(itConfig);
      await waitFor(
        async () => {
          const byTopic = await sinkLinesByTopic(sinkDir());
          return [...lastSeqs].every(([topic, lastSeq]) => byTopic.get(topic)?.at(-1)?.['seq'] === lastSeq);
        },
        'every stream in the sink up to its last sequence',
        20_000,
      );
      // Stopped, its counters include every write the sink has confirmed.
      await it.stop();
      assert.equal(it.status().it?.consumers[0]?.gapsWritten, STREAMS, 'one gap per stream');
    } finally {
      await it?.stop();
      await ot.stop();
    }

    // What the log still holds, from the log itself (the agent is stopped: its lock is free).
    const log = await openStreamLog({
      dir: join(otState(), 'log'),
      maxBytes: MAX_LOG_BYTES,
      maxAgeMs: 7 * 86_400_000,
      segmentBytes: 64 * 1024,
    });
    const retained = new Map(
      log
        .streams()
        .map((topic) => [topic, { first: log.firstSeq(topic), last: log.lastSeq(topic) }] as const),
    );
    await log.close();

    const byTopic = await sinkLinesByTopic(sinkDir());
    assert.equal(byTopic.size, STREAMS);
    for (const [topic, lines] of byTopic) {
      const { first, last } = retained.get(topic) ?? { first: 0, last: 0 };
      assert.ok(first > 1, `${topic}: retention deleted its oldest points`);
      assert.equal(last, lastSeqs.get(topic), `${topic}: the log holds what the agent reported`);
      assert.deepEqual(lines[0], { topic, gap: { from: 1, to: first - 1, reason: 'retention' } }, topic);
      const rest = lines.slice(1);
      assert.ok(
        rest.every((line) => line['gap'] === undefined),
        `${topic}: one gap only`,
      );
      assertRun(
        rest.map((line) => line['seq'] as number),
        first,
        last,
        topic,
      );
    }
  });
});

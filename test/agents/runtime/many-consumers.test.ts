import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { Agent } from '../../../agents/runtime/agent.ts';
import { createAgentPlant, simulatorAgent, startAgent, type AgentPlant } from '../../support/agent-plant.ts';
import { readMetric } from '../../support/metrics.ts';
import { waitFor } from '../../support/wait.ts';

/** The relay's default: sessions between one IT agent and one OT agent. */
const PAIR_LIMIT = 8;
const CONSUMERS = PAIR_LIMIT + 1;

describe('dmz-agent run: more consumers of one OT agent than the relay allows sessions', () => {
  let plant: AgentPlant;
  const agents: Agent[] = [];
  before(async () => {
    plant = await createAgentPlant({ limits: { maxSessionsPerPair: PAIR_LIMIT } });
  });
  after(async () => {
    await Promise.all(agents.map((agent) => agent.stop()));
    await plant.close();
  });

  it('relay - the consumers beyond maxSessionsPerPair ask for no session and say so, in status and the log; the others consume', async () => {
    agents.push(
      await startAgent(
        plant.config(
          simulatorAgent(await plant.enroll('ot', 'press-7'), join(plant.dir, 'ot-state'), {
            interval: '100ms',
            generate: { count: CONSUMERS, signal: 'ramp' },
          }),
        ),
      ),
    );
    const lines: Record<string, unknown>[] = [];
    const logger = pino(
      { level: 'info' },
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          for (const line of chunk.toString().split('\n'))
            if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
          done();
        },
      }),
    );
    const config = plant.config({
      credentials: await plant.enroll('it', 'historian'),
      state: join(plant.dir, 'it-state'),
      it: {
        sinks: Array.from({ length: CONSUMERS }, (_, index) => ({
          name: `s${index}`,
          type: 'jsonl',
          dir: join(plant.dir, `sink${index}`),
        })),
        consume: Array.from({ length: CONSUMERS }, (_, index) => ({
          name: `c${index}`,
          from: 'press-7',
          filter: `press-7/line1/p000${index}`,
          sink: `s${index}`,
        })),
      },
    });
    const it = await Agent.start({ config, configSource: 'agent.yaml', logger });
    agents.push(it);
    const consumers = () => it.status().it?.consumers ?? [];

    await waitFor(
      () => consumers().filter((consumer) => (consumer.pointsWritten ?? 0) > 0).length === PAIR_LIMIT,
      'the first consumers writing points',
      30_000,
      50,
    );
    const last = consumers().at(-1);
    assert.equal(last?.name, `c${PAIR_LIMIT}`);
    assert.equal(last?.state, 'over-limit');
    assert.equal(last?.pointsWritten, 0);
    assert.match(
      last?.lastError ?? '',
      /"c8" has no session: .*at most 8 sessions .*"press-7" \(relay limits\.maxSessionsPerPair\)/,
    );
    assert.deepEqual(
      consumers()
        .slice(0, PAIR_LIMIT)
        .map((consumer) => consumer.state === 'live' || consumer.state === 'replaying'),
      Array.from({ length: PAIR_LIMIT }, () => true),
    );
    const logged = lines.filter((line) => line['consumer'] === 'c8' && line['level'] === 50);
    assert.equal(logged.length, 1, 'said once, at error level');
    assert.match(String(logged[0]?.['msg']), /maxSessionsPerPair/);
    // It never asked: the relay refused no session (a consumer that asked would have asked again
    // within the plant's 500 ms backoff cap, long before the others wrote their first points).
    assert.equal(
      await readMetric(plant.relay!, 'dmz_relay_frame_errors_total', { code: 'RELAY_ERR_TOO_MANY' }),
      0,
    );
  });
});

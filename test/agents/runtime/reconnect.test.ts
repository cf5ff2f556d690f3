import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { loadCredentials } from '../../../agents/credentials.ts';
import { RelayLink } from '../../../agents/link/relay-link.ts';
import { LinkSupervisor } from '../../../agents/runtime/link-supervisor.ts';
import {
  assertEveryPointInSink,
  createAgentPlant,
  fileConsumerAgent,
  simulatorAgent,
  sinkLinesByTopic,
  startAgent,
  type AgentPlant,
} from '../../support/agent-plant.ts';
import { waitFor } from '../../support/wait.ts';

const FLEET = 30;
/** The fleet's backoff: from 100 ms, doubling to a 1 s cap (agents/link/backoff.ts). */
const BACKOFF = { baseMs: 100, capMs: 1_000 };
/**
 * How long the relay stays away: past the sum of the first ceilings (100+200+400+800 ms), so
 * every agent has failed a few times and waits up to the cap when the relay is back.
 */
const OUTAGE_MS = 1_500;
const BUCKET_MS = 50;
const LOG = pino({ level: 'silent' });

/** One agent's link, kept by the runtime's supervisor, with the time of every attempt and connect. */
interface SupervisedAgent {
  readonly supervisor: LinkSupervisor;
  readonly attempts: number[];
  readonly connects: number[];
}

async function supervise(plant: AgentPlant, name: string): Promise<SupervisedAgent> {
  const { keyPem, certPem, caPem } = await loadCredentials(await plant.enroll('ot', name));
  const attempts: number[] = [];
  const connects: number[] = [];
  const supervisor = new LinkSupervisor({
    connect: (closed) => {
      attempts.push(performance.now());
      return RelayLink.connect(
        { url: plant.url, keyPem, certPem, caPem, software: 'reconnect-test' },
        { closed },
      );
    },
    backoff: BACKOFF,
    onConnected: () => connects.push(performance.now()),
    onDisconnected: () => undefined,
    logger: LOG,
  });
  return { supervisor, attempts, connects };
}

/** The most of `times` that fall within any one window of `windowMs`. */
function densest(times: readonly number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let most = 0;
  for (let start = 0, end = 0; start < sorted.length; start++) {
    while (end < sorted.length && (sorted[end] ?? 0) - (sorted[start] ?? 0) < windowMs) end++;
    most = Math.max(most, end - start);
  }
  return most;
}

describe('dmz-agent run: reconnecting after a relay restart', () => {
  let plant: AgentPlant;

  before(async () => {
    plant = await createAgentPlant();
  });
  after(() => plant.close());

  it(`${FLEET} agents come back spread over the backoff window, not in one lump`, async (t) => {
    const fleet = await Promise.all(
      Array.from({ length: FLEET }, (_, index) => supervise(plant, `cell-${String(index).padStart(2, '0')}`)),
    );
    try {
      for (const agent of fleet) agent.supervisor.start();
      await waitFor(
        () => fleet.every((agent) => agent.connects.length === 1),
        'every agent connected',
        20_000,
      );

      await plant.stopRelay();
      await waitFor(() => fleet.every((agent) => !agent.supervisor.state.connected), 'every link lost');
      // The outage itself: the relay is away this long, whatever the agents do meanwhile.
      await new Promise((resolve) => setTimeout(resolve, OUTAGE_MS));
      await plant.startRelay();
      const backAt = performance.now();
      await waitFor(() => fleet.every((agent) => agent.connects.length === 2), 'every agent back', 15_000);

      // When each agent tried the attempt that got it back: its supervisor's choice, not the relay's pace.
      const delays = fleet.map((agent) => (agent.attempts.at(-1) ?? 0) - backAt);
      const buckets = new Map<number, number>();
      for (const delay of delays) {
        const bucket = Math.max(0, Math.floor(delay / BUCKET_MS));
        buckets.set(bucket, (buckets.get(bucket) ?? 0) + 1);
      }
      const histogram = [...buckets]
        .sort(([a], [b]) => a - b)
        .map(([bucket, n]) => `${bucket * BUCKET_MS}ms:${n}`);
      t.diagnostic(`reconnect attempts after the relay was back (50 ms buckets): ${histogram.join(' ')}`);
      t.diagnostic(
        `attempts during the ${OUTAGE_MS} ms outage: ${fleet.map((agent) => agent.attempts.length - 2).join(',')}`,
      );

      assert.ok(
        fleet.every((agent) => agent.attempts.length > 2),
        'every agent tried (and failed) while the relay was away',
      );
      assert.ok(
        // Within the cap, or two if the first try after the restart met a relay still busy.
        delays.every((delay) => delay < 2 * BACKOFF.capMs),
        `every agent back within the cap: ${delays.map(Math.round).join(',')}`,
      );
      assert.ok(buckets.size >= 6, `spread over only ${buckets.size} buckets of ${BUCKET_MS} ms`);
      const lump = densest(
        fleet.map((agent) => agent.attempts.at(-1) ?? 0),
        BUCKET_MS,
      );
      assert.ok(lump < (FLEET * 2) / 3, `${lump} of ${FLEET} agents came back within ${BUCKET_MS} ms`);
    } finally {
      await Promise.all(fleet.map((agent) => agent.supervisor.stop()));
    }
  });

  it('the IT agent reopens its session and subscription by itself, and new points flow again', async (t) => {
    const topics = ['temp', 'count', 'running'].map((point) => `press-8/line1/${point}`);
    const readings = 2_500;
    const sinkDir = join(plant.dir, 'historian-sink');
    const press = await startAgent(
      plant.config(
        simulatorAgent(await plant.enroll('ot', 'press-8'), join(plant.dir, 'press-8-state'), {
          interval: '2ms',
          batch: 5,
          limit: readings,
          points: [
            { name: 'temp', signal: 'sine', period: '1s', min: 20, max: 80 },
            { name: 'count', signal: 'ramp', min: 0, max: 100_000, step: 1 },
            { name: 'running', signal: 'toggle', period: '50ms' },
          ],
        }),
      ),
    );
    const historian = await startAgent(
      plant.config(
        fileConsumerAgent(
          await plant.enroll('it', 'historian'),
          join(plant.dir, 'historian-state'),
          sinkDir,
          'press-8',
        ),
      ),
    );
    const lastInSink = async () => {
      const byTopic = await sinkLinesByTopic(sinkDir);
      return topics.map((topic) => (byTopic.get(topic)?.at(-1)?.['seq'] as number | undefined) ?? 0);
    };
    try {
      await waitFor(
        async () => (await lastInSink()).every((seq) => seq >= 100),
        'the first points in the sink',
        20_000,
      );
      const sessionBefore = historian.status().it?.consumers[0]?.session;
      const sessionsOpened = () =>
        plant.audit.entries.filter((entry) => entry.event === 'session.opened' && entry['it'] === 'historian')
          .length;
      assert.equal(sessionsOpened(), 1);

      await plant.stopRelay();
      await waitFor(
        () => !historian.status().relay.connected && !press.status().relay.connected,
        'both agents see the relay gone',
      );
      await plant.startRelay();
      // Points the OT agent has logged by now can only reach the sink through the new session.
      const loggedAtRestart = topics.map(
        (topic) => press.status().ot?.streams.find((s) => s.topic === topic)?.lastSeq ?? 0,
      );
      assert.ok(
        loggedAtRestart.every((seq) => seq < readings),
        'the source still runs after the restart',
      );

      await waitFor(
        async () => (await lastInSink()).every((seq, index) => seq > (loggedAtRestart[index] ?? 0)),
        'points logged after the restart in the sink',
        20_000,
      );
      const status = historian.status();
      assert.equal(status.relay.connects, 2, 'the IT agent reconnected once');
      assert.equal(sessionsOpened(), 2, 'it opened a new session on the restarted relay');
      assert.notEqual(status.it?.consumers[0]?.session, undefined);
      t.diagnostic(`session ${sessionBefore} before the restart, ${status.it?.consumers[0]?.session} after`);

      await assertEveryPointInSink(sinkDir, topics, readings);
    } finally {
      await historian.stop();
      await press.stop();
    }
  });
});

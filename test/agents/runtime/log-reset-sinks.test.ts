import assert from 'node:assert/strict';
import { cp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { openRecentSink } from '../../../agents/it/sinks/recent-sink.ts';
import type { SinkEntry } from '../../../agents/it/sinks/sink.ts';
import type { Agent } from '../../../agents/runtime/agent.ts';
import {
  assertRun,
  createAgentPlant,
  simulatorAgent,
  startAgent,
  waitUntilLogged,
  type AgentPlant,
} from '../../support/agent-plant.ts';
import { TestBroker } from '../../support/mqtt-broker.ts';
import { waitFor } from '../../support/wait.ts';

const STREAMS = 4;
const READINGS = 300;
const DEADLINE_MS = 60_000;
const RESTORED = 'the OT log was restored from an older copy';

/** A stream as a sink ends up holding it: its entries in the order the sink took them. */
type Held = ReadonlyMap<string, readonly SinkEntry[]>;

interface SinkUnderTest {
  readonly config: Record<string, unknown>;
  /** The last point of the first runs still held: a store that forgets what a reset takes back keeps 300. */
  readonly lastBeforeReset: number;
  /** What the sink holds of press-7's streams, read once the IT agent has stopped. */
  held(itState: string): Promise<Held>;
}

/**
 * The case only the log epochs a sink keeps can catch (sink.ts logEpochs): the OT log is restored
 * from an older copy while the IT agent is stopped, and grows back to the IT consumer's cursor
 * before that agent starts again. Its cursors are then no longer ahead of the log: without the
 * epochs read back from the sink, the OT agent has nothing to tell the new points from those the
 * sink holds, and they are taken for repeats (silent loss). The file sink's case is in
 * log-reset.test.ts; these are the MQTT bridge (a real broker, aedes) and the recent-values store.
 */
describe('dmz-agent run: an OT log restored while the IT agent was stopped, with each sink', () => {
  let plant: AgentPlant;
  let broker: TestBroker;
  let otCredentials: string;
  const running = new Set<Agent>();

  before(async () => {
    plant = await createAgentPlant();
    broker = await TestBroker.start();
    otCredentials = await plant.enroll('ot', 'press-7');
  });
  afterEach(async () => {
    // A test that failed leaves its agents: the next must not meet another press-7.
    for (const agent of running) await agent.stop();
    running.clear();
  });
  after(async () => {
    await broker.stop();
    await plant.close();
  });

  async function start(config: Record<string, unknown>): Promise<Agent> {
    const agent = await startAgent(plant.config(config));
    running.add(agent);
    return agent;
  }

  async function stop(agent: Agent): Promise<void> {
    await agent.stop();
    running.delete(agent);
  }

  /** The OT agent, its simulator logging each stream up to `upTo`, once it has. */
  async function startOt(dir: string, upTo: number): Promise<Agent> {
    const ot = await start(
      simulatorAgent(otCredentials, join(dir, 'ot-state'), {
        interval: '2ms',
        batch: 10,
        limit: upTo,
        generate: { count: STREAMS, signal: 'sine', period: '1s' },
      }),
    );
    await waitUntilLogged(ot, STREAMS, upTo, DEADLINE_MS);
    return ot;
  }

  /** Waits until the IT consumer's sink holds every stream up to `upTo`, with `resets` resets. */
  async function consumed(it: Agent, upTo: number, resets: number): Promise<void> {
    await waitFor(
      () => {
        const consumer = it.status().it?.consumers[0];
        const streams = consumer?.streams.filter((stream) => stream.topic.startsWith('press-7/')) ?? [];
        return (
          consumer?.resetsWritten === resets &&
          streams.length === STREAMS &&
          streams.every((stream) => stream.lastSeq === upTo)
        );
      },
      `the sink at ${upTo} with ${resets} resets`,
      DEADLINE_MS,
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}; consumer ${JSON.stringify(it.status().it?.consumers[0])}`);
    });
  }

  async function restoredWhileStopped(name: string, sink: SinkUnderTest): Promise<void> {
    const dir = join(plant.dir, name);
    const log = join(dir, 'ot-state', 'log');
    const itConfig = {
      credentials: await plant.enroll('it', name),
      state: join(dir, 'it-state'),
      it: { sinks: [sink.config], consume: [{ from: 'press-7', sink: sink.config['name'] }] },
    };
    let it = await start(itConfig);
    let ot = await startOt(dir, READINGS);
    await consumed(it, READINGS, 0);
    await stop(ot);
    await cp(log, `${log}-backup`, { recursive: true });
    ot = await startOt(dir, 2 * READINGS);
    await consumed(it, 2 * READINGS, 0);
    await stop(ot);
    await stop(it);

    // The copy holds 1..300; its next run numbers 301..600 again, up to the sink's cursor.
    await rm(log, { recursive: true });
    await cp(`${log}-backup`, log, { recursive: true });
    ot = await startOt(dir, 2 * READINGS);
    it = await start(itConfig);
    await consumed(it, 2 * READINGS, STREAMS);
    await stop(it);
    await stop(ot);

    const held = await sink.held(itConfig.state);
    assert.equal(held.size, STREAMS);
    for (const [topic, entries] of held) {
      const resets = entries.filter((entry) => entry.kind === 'reset');
      assert.deepEqual(
        resets,
        [{ kind: 'reset', topic, from: READINGS + 1, held: 2 * READINGS, reason: RESTORED }],
        topic,
      );
      const at = entries.indexOf(resets[0] as SinkEntry);
      const before = points(entries.slice(0, at));
      const afterReset = points(entries.slice(at + 1));
      assertRun(
        before.map((point) => point.seq),
        1,
        sink.lastBeforeReset,
        `${topic} before the restore`,
      );
      assertRun(
        afterReset.map((point) => point.seq),
        READINGS + 1,
        2 * READINGS,
        `${topic} after it`,
      );
      assert.ok(
        (afterReset[0]?.sourceTime ?? 0) > (before.at(-1)?.sourceTime ?? Infinity),
        `${topic}: the points after the reset are the new ones`,
      );
    }
  }

  it('the MQTT bridge: a reset message where the copy ends, then every new point', async () => {
    await restoredWhileStopped('mqtt', {
      config: { name: 'bridge', type: 'mqtt', broker: { url: broker.url }, prefix: 'plant' },
      lastBeforeReset: 2 * READINGS,
      held: () => Promise.resolve(publishedByBridge(broker)),
    });
  });

  it('the recent-values store: a reset entry where the copy ends, then every new point', async () => {
    await restoredWhileStopped('recent', {
      config: { name: 'recent', type: 'recent', historyPerTopic: 4 * READINGS },
      lastBeforeReset: READINGS,
      held: async (itState) => {
        const store = await openRecentSink({
          name: 'recent',
          dir: join(itState, 'sinks', 'recent'),
          maxEntriesPerTopic: 4 * READINGS,
          maxAgeMs: 1e15,
          snapshotIntervalMs: 60_000,
        });
        try {
          const page = store.history({ filter: 'press-7/#', afterId: 0, limit: 100 * READINGS });
          return byTopic(page.entries.map(({ entry }) => entry));
        } finally {
          await store.close();
        }
      },
    });
  });
});

/** What the bridge published under `plant/`, as the entries it came from (repeats dropped by seq). */
function publishedByBridge(broker: TestBroker): Held {
  const entries: SinkEntry[] = [];
  const seen = new Set<string>();
  for (const message of broker.published) {
    if (!message.topic.startsWith('plant/press-7/')) continue;
    const topic = message.topic.slice('plant/'.length);
    const body = JSON.parse(message.payload.toString('utf8')) as Record<string, unknown>;
    const reset = body['reset'] as { from: number; held: number; reason: string } | undefined;
    if (reset !== undefined) {
      entries.push({ kind: 'reset', topic, ...reset });
      continue;
    }
    // At least once: a point sent again after a broken connection is a repeat of its run.
    const runs = entries.filter((entry) => entry.kind === 'reset' && entry.topic === topic).length;
    const key = `${topic} ${runs} ${String(body['seq'])}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const point = { topic, seq: body['seq'] as number, sourceTime: body['timestamp'] as number };
    entries.push({ kind: 'point', point: point as Extract<SinkEntry, { kind: 'point' }>['point'] });
  }
  return byTopic(entries);
}

function byTopic(entries: readonly SinkEntry[]): Held {
  const held = new Map<string, SinkEntry[]>();
  for (const entry of entries) {
    const topic = entry.kind === 'point' ? entry.point.topic : entry.topic;
    if (!topic.startsWith('press-7/')) continue;
    held.set(topic, [...(held.get(topic) ?? []), entry]);
  }
  return held;
}

function points(entries: readonly SinkEntry[]) {
  return entries.flatMap((entry) => (entry.kind === 'point' ? [entry.point] : []));
}

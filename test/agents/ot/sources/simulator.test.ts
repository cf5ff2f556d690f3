import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PointReading } from '../../../../agents/points/point.ts';
import { createSource, type SourceConfig } from '../../../../agents/ot/sources/registry.ts';
import { MIN_RETRY_DELAY_MS } from '../../../../agents/ot/sources/simulator.ts';
import {
  MAX_READINGS_PER_WRITE,
  type PointSource,
  type SourceOutput,
} from '../../../../agents/ot/sources/source.ts';
import { DmzError } from '../../../../relay/protocol/errors.ts';
import { parseDuration } from '../../../../pki/duration.ts';
import { ManualClock } from '../../../support/manual-clock.ts';
import { waitFor } from '../../../support/wait.ts';

/** A whole multiple of every period below, so the time-based signals start at phase 0. */
const T0 = 1_800_000_000_000;
const AGENT = 'press-7';

interface Write {
  readonly topic: string;
  readonly readings: readonly PointReading[];
}

/** Records every write; while `held`, a write resolves only when the test releases it. */
class RecordingOutput implements SourceOutput {
  readonly writes: Write[] = [];
  held = false;
  /** Refuses this many writes (AGENT_ERR_LOG_BUSY) before it accepts any. */
  refusals = 0;
  #waiting: (() => void)[] = [];

  async write(topic: string, readings: readonly PointReading[]): Promise<void> {
    if (this.refusals > 0) {
      this.refusals--;
      throw new DmzError('AGENT_ERR_LOG_BUSY');
    }
    if (this.held) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    this.writes.push({ topic, readings });
  }

  get inFlight(): number {
    return this.#waiting.length;
  }

  release(): void {
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const resolve of waiting) resolve();
  }

  readingsOf(topic: string): PointReading[] {
    return this.writes.filter((write) => write.topic === topic).flatMap((write) => write.readings);
  }

  batchSizes(topic: string): number[] {
    return this.writes.filter((write) => write.topic === topic).map((write) => write.readings.length);
  }
}

function simulator(fields: Partial<Extract<SourceConfig, { type: 'simulator' }>>): SourceConfig {
  return { type: 'simulator', name: 'line1', ...fields } as SourceConfig;
}

function startSimulator(config: SourceConfig, clock = new ManualClock(T0)) {
  const source = createSource(config, { agentName: AGENT, now: clock.now, timers: clock });
  const output = new RecordingOutput();
  return { source, output, clock };
}

/** Runs a source with a `limit` to its end on a manual clock; its readings per topic. */
async function runToEnd(config: SourceConfig): Promise<Map<string, PointReading[]>> {
  const { source, output, clock } = startSimulator(config);
  source.start(output);
  for (let round = 0; !source.stats().finished; round++) {
    assert.ok(round < 100_000, 'the source finishes');
    await clock.advance(1_000);
  }
  await source.stop();
  return new Map(source.topics.map((topic) => [topic, output.readingsOf(topic)]));
}

const valuesOf = (readings: readonly PointReading[] | undefined) => (readings ?? []).map((r) => r.value);

describe('agents/ot/sources simulator', () => {
  const SIGNALS: [string, Record<string, unknown>, string, unknown[]][] = [
    // Phase 0, a quarter, a half, three quarters, a whole wave.
    ['sine', { signal: 'sine', period: '60s', min: 20, max: 80 }, '15s', [50, 80, 50, 20, 50]],
    ['ramp, wrapping after max', { signal: 'ramp', min: 0, max: 3 }, '1s', [0, 1, 2, 3, 0, 1]],
    [
      'ramp by 4 in 10..20',
      { signal: 'ramp', min: 10, max: 20, step: 4 },
      '1s',
      [10, 14, 18, 11, 15, 19, 12],
    ],
    [
      'step through numbers',
      { signal: 'step', values: [1, 2, 3], period: '10s' },
      '5s',
      [1, 1, 2, 2, 3, 3, 1],
    ],
    [
      'step through text',
      { signal: 'step', values: ['idle', 'run'], period: '1s' },
      '500ms',
      ['idle', 'idle', 'run', 'run', 'idle'],
    ],
    ['toggle', { signal: 'toggle', period: '5s' }, '2500ms', [false, false, true, true, false, false]],
  ];
  for (const [name, point, interval, expected] of SIGNALS) {
    it(`${name}: ${expected.join(', ')}`, async () => {
      const config = simulator({
        interval,
        limit: expected.length,
        points: [{ name: 'x', ...point }] as never,
      });
      const readings = (await runToEnd(config)).get(`${AGENT}/line1/x`) ?? [];
      const intervalMs = parseDuration(interval, { milliseconds: true })!;
      assert.equal(readings.length, expected.length);
      readings.forEach((reading, index) => {
        const want = expected[index];
        // A sine's floats come within rounding of the exact values.
        if (typeof want === 'number')
          assert.ok(Math.abs((reading.value as number) - want) < 1e-9, `reading ${index}`);
        else assert.equal(reading.value, want, `reading ${index}`);
        assert.equal(reading.quality, 'good');
        assert.equal(reading.sourceTime, T0 + index * intervalMs);
      });
    });
  }

  it('walks randomly within [min, max], at most `step` a reading, the same for the same seed', async () => {
    const walk = (seed: number, min = 0, max = 100, step = 0.5) =>
      simulator({
        interval: '100ms',
        limit: 2_000,
        points: [{ name: 'level', signal: 'randomWalk', min, max, step, seed }],
      });
    const topic = `${AGENT}/line1/level`;
    const first = valuesOf((await runToEnd(walk(7))).get(topic)) as number[];
    assert.equal(first.length, 2_000);
    assert.equal(first[0], 50, 'starts in the middle');
    for (let index = 1; index < first.length; index++) {
      assert.ok(Math.abs(first[index]! - first[index - 1]!) <= 0.5 + 1e-12);
      assert.ok(first[index]! >= 0 && first[index]! <= 100);
    }
    assert.ok(new Set(first).size > 1_000, 'it moves');
    assert.deepEqual(valuesOf((await runToEnd(walk(7))).get(topic)), first);
    assert.notDeepEqual(valuesOf((await runToEnd(walk(8))).get(topic)), first);
    // A step larger than the range bounces off both bounds and still never leaves it.
    const narrow = valuesOf((await runToEnd(walk(7, 0, 1, 5))).get(topic)) as number[];
    assert.ok(narrow.every((value) => value >= 0 && value <= 1));
  });

  it('is deterministic for a clock: two runs of the example config read the same, unseeded walks differ by name', async () => {
    const config = simulator({
      interval: '100ms',
      limit: 300,
      points: [
        { name: 'temp', signal: 'sine', period: '60s', min: 20, max: 80, unit: 'degC' },
        { name: 'count', signal: 'ramp', min: 0, max: 1000, step: 1 },
        { name: 'level', signal: 'randomWalk', min: 0, max: 100, step: 0.5, seed: 7 },
        { name: 'mode', signal: 'step', values: [1, 2, 3], period: '10s' },
        { name: 'running', signal: 'toggle', period: '5s' },
        { name: 'a', signal: 'randomWalk' },
        { name: 'b', signal: 'randomWalk' },
      ],
      generate: { count: 3, signal: 'sine' },
    });
    const first = await runToEnd(config);
    assert.deepEqual(await runToEnd(config), first);
    assert.notDeepEqual(valuesOf(first.get(`${AGENT}/line1/a`)), valuesOf(first.get(`${AGENT}/line1/b`)));
    // Generated points are spread over the period: at T0 the first reads the middle, the others not.
    const atStart = ['p0000', 'p0001', 'p0002'].map(
      (name) => first.get(`${AGENT}/line1/${name}`)?.[0]?.value,
    );
    assert.equal(atStart[0], 50);
    assert.equal(new Set(atStart).size, 3);
  });

  it('gives generated walks with a seed consecutive seeds: the first is the seed, none alike', async () => {
    const readings = await runToEnd(
      simulator({
        interval: '1s',
        limit: 50,
        points: [{ name: 'seven', signal: 'randomWalk', seed: 7 }],
        generate: { count: 3, signal: 'randomWalk', seed: 7 },
      }),
    );
    const walks = ['seven', 'p0000', 'p0001', 'p0002'].map((name) =>
      JSON.stringify(valuesOf(readings.get(`${AGENT}/line1/${name}`))),
    );
    assert.equal(walks[1], walks[0]);
    assert.equal(new Set(walks).size, 3);
  });

  it('counts readings for an injected clock: one per point per interval, in whole batches', async () => {
    for (const [batch, expected] of [
      [1, 601],
      [10, 600],
    ] as const) {
      const { source, output, clock } = startSimulator(
        simulator({
          interval: '100ms',
          batch,
          points: [{ name: 'a', signal: 'sine' }],
          generate: { count: 9, signal: 'ramp' },
        }),
      );
      source.start(output);
      await clock.advance(60_000);
      const stats = source.stats();
      // 60 s at 10 readings a second, reading 0 at the start: 601 due, 600 of them in whole batches of 10.
      assert.equal(stats.readings, 10 * expected, `batch ${batch}`);
      assert.equal(stats.batches, (10 * expected) / batch);
      assert.ok(output.batchSizes(`${AGENT}/line1/p0003`).every((size) => size === batch));
      assert.equal(stats.behind, 0);
      assert.equal(stats.lagMs, 0);
      assert.equal(stats.finished, false);
      await source.stop();
      assert.equal(clock.pendingTimers, 0);
    }
  });

  it('with a slow output: exactly `limit` readings per topic, none lost or repeated, later batches bigger', async () => {
    const { source, output, clock } = startSimulator(
      simulator({
        interval: '100ms',
        limit: 25,
        points: [
          { name: 'count', signal: 'ramp' },
          { name: 'running', signal: 'toggle', period: '300ms' },
        ],
      }),
    );
    output.held = true;
    source.start(output);
    await clock.advance(0);
    assert.equal(output.inFlight, 2, 'one write per topic');
    // The log takes a whole second for the first write: no further write starts meanwhile.
    await clock.advance(1_000);
    assert.equal(output.inFlight, 2);
    output.release();
    await clock.advance(0);
    assert.equal(output.inFlight, 2);
    output.release();
    for (let step = 0; !source.stats().finished; step++) {
      assert.ok(step < 100, 'the source finishes');
      await clock.advance(250);
      output.release();
      await clock.advance(0);
    }
    for (const topic of source.topics) {
      const readings = output.readingsOf(topic);
      assert.deepEqual(
        readings.map((reading) => reading.sourceTime),
        Array.from({ length: 25 }, (_, k) => T0 + k * 100),
      );
      const sizes = output.batchSizes(topic);
      assert.deepEqual(
        sizes.slice(0, 2),
        [1, 10],
        'the write after the slow one catches up the whole second',
      );
      assert.ok(sizes.every((size) => size >= 1));
    }
    assert.deepEqual(
      valuesOf(output.readingsOf(`${AGENT}/line1/count`)),
      Array.from({ length: 25 }, (_, k) => k),
    );
    const stats = source.stats();
    assert.equal(stats.readings, 50);
    assert.ok(stats.behind >= 1);
    const writes = output.writes.length;
    await clock.advance(60_000);
    assert.equal(output.writes.length, writes, 'a finished source writes no more');
    assert.equal(clock.pendingTimers, 0);
    await source.stop();
  });

  it(`catches up in writes of at most ${MAX_READINGS_PER_WRITE} readings`, async () => {
    const { source, output, clock } = startSimulator(
      simulator({
        interval: '10ms',
        limit: 10_000,
        points: [{ name: 'count', signal: 'ramp', max: 100_000 }],
      }),
    );
    output.held = true;
    source.start(output);
    await clock.advance(0);
    await clock.advance(200_000);
    output.held = false;
    output.release();
    await clock.advance(0);
    const topic = `${AGENT}/line1/count`;
    assert.deepEqual(output.batchSizes(topic), [
      1,
      MAX_READINGS_PER_WRITE,
      MAX_READINGS_PER_WRITE,
      10_000 - 1 - 2 * MAX_READINGS_PER_WRITE,
    ]);
    assert.deepEqual(
      valuesOf(output.readingsOf(topic)),
      Array.from({ length: 10_000 }, (_, k) => k),
    );
    assert.ok(source.stats().finished);
  });

  it('keeps refused readings and writes them again, reporting the refusal', async () => {
    const { source, output, clock } = startSimulator(
      simulator({ interval: '50ms', limit: 10, points: [{ name: 'count', signal: 'ramp' }] }),
    );
    output.refusals = 3;
    source.start(output);
    await clock.advance(0);
    let stats = source.stats();
    assert.equal(stats.failedWrites, 1);
    assert.equal(stats.lastError?.code, 'AGENT_ERR_LOG_BUSY');
    assert.equal(stats.lastError?.time, T0);
    // Not hammered: the next try waits MIN_RETRY_DELAY_MS.
    await clock.advance(MIN_RETRY_DELAY_MS - 1);
    assert.equal(source.stats().failedWrites, 1);
    await clock.advance(1_000);
    stats = source.stats();
    assert.equal(stats.failedWrites, 3);
    assert.ok(stats.finished);
    assert.deepEqual(valuesOf(output.readingsOf(`${AGENT}/line1/count`)), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    await source.stop();
  });

  it('stop() resolves only once the write in flight has resolved, and nothing is written after', async () => {
    const { source, output, clock } = startSimulator(
      simulator({ interval: '100ms', points: [{ name: 'a', signal: 'sine' }] }),
    );
    output.held = true;
    source.start(output);
    await clock.advance(0);
    assert.equal(output.inFlight, 1);
    let stopped = false;
    const stopping = source.stop().then(() => {
      stopped = true;
    });
    await clock.advance(500);
    assert.equal(stopped, false, 'stop waits for the write');
    output.release();
    await stopping;
    assert.equal(source.stats().readings, 1, 'the write in flight still counts');
    await clock.advance(10_000);
    assert.equal(output.writes.length, 1);
    assert.equal(output.inFlight, 0);
    assert.equal(clock.pendingTimers, 0);
  });

  it('stops at once between writes, and starts only once (AGENT_ERR_SOURCE_STATE)', async () => {
    const { source, output, clock } = startSimulator(
      simulator({ interval: '1s', points: [{ name: 'a', signal: 'sine' }] }),
    );
    source.start(output);
    await clock.advance(2_500);
    assert.equal(output.writes.length, 3);
    assert.throws(() => source.start(output), { code: 'AGENT_ERR_SOURCE_STATE' });
    await source.stop();
    assert.equal(clock.pendingTimers, 0);
    await clock.advance(10_000);
    assert.equal(output.writes.length, 3);
    assert.throws(() => source.start(output), { code: 'AGENT_ERR_SOURCE_STATE' });
  });

  it('runs on the platform clock and timers by default', async () => {
    const source: PointSource = createSource(
      simulator({ interval: '1ms', batch: 4, limit: 20, points: [{ name: 'a', signal: 'ramp' }] }),
      { agentName: AGENT },
    );
    const output = new RecordingOutput();
    source.start(output);
    await waitFor(() => source.stats().finished, 'the source to finish');
    await source.stop();
    const readings = output.readingsOf(`${AGENT}/line1/a`);
    assert.deepEqual(
      valuesOf(readings),
      Array.from({ length: 20 }, (_, k) => k),
    );
    const first = readings[0]!.sourceTime;
    assert.deepEqual(
      readings.map((reading) => reading.sourceTime - first),
      Array.from({ length: 20 }, (_, k) => k),
    );
  });
});

/**
 * The queue between a source whose device reports when it likes and the log, in memory: one write
 * per topic in flight and in order, a refused write written again, the bound that drops the oldest
 * (and says so), a reading the point model refuses turned into a bad one, and close.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PointReading } from '../../../../agents/points/point.ts';
import { ReadingQueue } from '../../../../agents/ot/sources/reading-queue.ts';
import { PLATFORM_TIMERS, type SourceOutput } from '../../../../agents/ot/sources/source.ts';
import { DmzError } from '../../../../relay/protocol/errors.ts';
import { waitFor } from '../../../support/wait.ts';

const T0 = Date.parse('2026-12-01T10:00:00.000Z');
const reading = (value: number): PointReading => ({ value, quality: 'good', sourceTime: T0 + value });

/** Holds every write until released; refuses the first `refusals`. */
class HeldOutput implements SourceOutput {
  readonly writes: { topic: string; values: PointReading['value'][] }[] = [];
  readonly readings: PointReading[] = [];
  refusals = 0;
  #release: (() => void)[] = [];

  async write(topic: string, readings: readonly PointReading[]): Promise<void> {
    await new Promise<void>((resolve) => this.#release.push(resolve));
    if (this.refusals > 0) {
      this.refusals--;
      throw new DmzError('AGENT_ERR_LOG_BUSY');
    }
    this.writes.push({ topic, values: readings.map((one) => one.value) });
    this.readings.push(...readings);
  }

  get waiting(): number {
    return this.#release.length;
  }

  release(): void {
    const waiting = this.#release;
    this.#release = [];
    for (const resolve of waiting) resolve();
  }
}

function queueWith(output: SourceOutput, maxPending?: number): ReadingQueue {
  return new ReadingQueue(output, () => T0, PLATFORM_TIMERS, maxPending);
}

describe('reading queue', () => {
  it('writes each topic in order, one write in flight, what arrived meanwhile in the next', async () => {
    const output = new HeldOutput();
    const queue = queueWith(output);
    queue.push('a', reading(1));
    queue.push('b', reading(10));
    queue.push('a', reading(2));
    queue.push('a', reading(3));
    assert.equal(output.waiting, 2, 'one write per topic');
    output.release();
    await waitFor(() => output.waiting === 1, 'the second write of a');
    output.release();
    await waitFor(() => output.writes.length === 3, 'three writes');
    assert.deepEqual(output.writes, [
      { topic: 'a', values: [1] },
      { topic: 'b', values: [10] },
      { topic: 'a', values: [2, 3] },
    ]);
    assert.deepEqual([queue.stats().readings, queue.stats().batches], [4, 3]);
  });

  it('writes a refused batch again, first, and counts it', async () => {
    const output = new HeldOutput();
    output.refusals = 1;
    const queue = queueWith(output);
    queue.push('a', reading(1));
    output.release();
    await waitFor(() => queue.stats().failedWrites === 1, 'the refusal');
    queue.push('a', reading(2));
    await waitFor(() => output.waiting === 1, 'the retry');
    output.release();
    await waitFor(() => output.writes.length === 1, 'the write');
    assert.deepEqual(output.writes, [{ topic: 'a', values: [1, 2] }]);
    assert.equal(queue.stats().lastError?.code, 'AGENT_ERR_LOG_BUSY');
  });

  it('past its bound drops the oldest waiting readings of the topic, and says how many', async () => {
    const output = new HeldOutput();
    const queue = queueWith(output, 3);
    for (let value = 1; value <= 6; value++) queue.push('a', reading(value));
    output.release();
    await waitFor(() => output.waiting === 1, 'the next write');
    output.release();
    await waitFor(() => output.writes.length === 2, 'both writes');
    assert.deepEqual(output.writes, [
      { topic: 'a', values: [1] },
      { topic: 'a', values: [4, 5, 6] },
    ]);
    assert.match(queue.stats().lastError?.message ?? '', /dropped 2 readings so far: the log is behind/);
  });

  it('a reading the point model refuses goes in as a bad one that says why', async () => {
    const output = new HeldOutput();
    const queue = queueWith(output);
    queue.push('a', { value: 'broken \ud800', quality: 'good', sourceTime: T0 });
    output.release();
    await waitFor(() => output.writes.length === 1, 'the write');
    const [written] = output.readings;
    assert.deepEqual([written?.quality, written?.sourceTime], ['bad', T0]);
    assert.match(written?.reason ?? '', /not well-formed Unicode/);
  });

  it('close waits for the write in flight and writes nothing after', async () => {
    const output = new HeldOutput();
    const queue = queueWith(output);
    queue.push('a', reading(1));
    queue.push('a', reading(2));
    let closed = false;
    const closing = queue.close().then(() => (closed = true));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(closed, false, 'the write in flight is awaited');
    output.release();
    await closing;
    queue.push('a', reading(3));
    assert.equal(output.waiting, 0);
    assert.deepEqual(output.writes, [{ topic: 'a', values: [1] }]);
  });
});

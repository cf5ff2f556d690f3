/**
 * The bridge's way from writes to PUBACKs, in memory: a link whose acknowledgements the test hands
 * out one by one, and a clock that moves only when the test moves it. What the broker tests cannot
 * pin down without timing: a slow broker never makes the bridge give up, a silent one does after
 * WRITE_DEADLINE_MS; a broken connection sends again everything not settled, and nothing of the
 * old connection counts after it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BridgeFormat, BridgeMessage } from '../../../../agents/it/sinks/mqtt/bridge-format.ts';
import { JsonFormat } from '../../../../agents/it/sinks/mqtt/json-format.ts';
import {
  PublishPipeline,
  WRITE_DEADLINE_MS,
  type PipelineLink,
} from '../../../../agents/it/sinks/mqtt/publish-pipeline.ts';
import { TopicMap } from '../../../../agents/it/sinks/mqtt/topic-map.ts';
import { ManualClock } from '../../../support/manual-clock.ts';
import { pointEntries } from './sink-fixture.ts';

const TEMP = 'press-7/line1/temp';

/** A connection whose PUBACKs come when the test says. */
class TestLink implements PipelineLink {
  connected = true;
  readonly sent: BridgeMessage[] = [];
  #acks: (() => void)[] = [];

  publish(message: BridgeMessage, acknowledged: () => void): boolean {
    if (!this.connected) return false;
    this.sent.push(message);
    this.#acks.push(acknowledged);
    return true;
  }

  get unacknowledged(): number {
    return this.#acks.length;
  }

  acknowledge(count: number): void {
    for (const ack of this.#acks.splice(0, count)) ack();
  }

  /** The connection breaks: its acknowledgements will never come (or come too late to count). */
  break(): (() => void)[] {
    this.connected = false;
    return this.#acks.splice(0);
  }
}

function setUp(window = { messages: 10, bytes: 1024 * 1024 }) {
  const clock = new ManualClock(0);
  const link = new TestLink();
  const format: BridgeFormat = new JsonFormat({
    topics: new TopicMap([], undefined),
    retain: true,
    statusPrefix: 'dmz/status',
    agentName: 'historian',
  });
  const held = new Map<string, number>();
  let abandoned = 0;
  const pipeline = new PublishPipeline(
    link,
    format,
    window,
    {
      acknowledged: (advance) => {
        for (const [topic, seq] of advance) held.set(topic, seq);
      },
      abandoned: () => abandoned++,
    },
    clock.now,
  );
  return { clock, link, pipeline, held, abandoned: () => abandoned };
}

function settled(promise: Promise<void>): { done: boolean; error: unknown } {
  const state = { done: false, error: undefined as unknown };
  promise.then(
    () => (state.done = true),
    (error: unknown) => {
      state.done = true;
      state.error = error;
    },
  );
  return state;
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

describe('mqtt bridge - publish pipeline', () => {
  it('never gives up on a broker that is slow but acknowledges, however long the queue', async () => {
    const { clock, link, pipeline, held } = setUp();
    const writes = Array.from({ length: 50 }, (_, index) =>
      settled(pipeline.accept(pointEntries(TEMP, index * 20 + 1, 20), new Map([[TEMP, index * 20 + 20]]))),
    );
    // 1000 messages, one PUBACK per second: the last write waits over 16 minutes, yet is kept.
    for (let acked = 0; acked < 1000; acked++) {
      assert.ok(link.unacknowledged <= 10, 'the window holds');
      await clock.advance(WRITE_DEADLINE_MS - 1);
      pipeline.expire();
      link.acknowledge(1);
    }
    await flush();
    assert.ok(writes.every((write) => write.done && write.error === undefined));
    assert.equal(held.get(TEMP), 1000);
  });

  it('gives every write up once the broker acknowledged nothing for the deadline, and not before', async () => {
    const { clock, link, pipeline, held, abandoned } = setUp();
    const first = settled(pipeline.accept(pointEntries(TEMP, 1, 5), new Map([[TEMP, 5]])));
    const second = settled(pipeline.accept(pointEntries(TEMP, 6, 20), new Map([[TEMP, 25]])));
    link.acknowledge(5);
    await flush();
    assert.ok(first.done);
    await clock.advance(WRITE_DEADLINE_MS - 1);
    pipeline.expire();
    await flush();
    assert.equal(second.done, false);
    await clock.advance(1);
    pipeline.expire();
    await flush();
    assert.equal((second.error as { code?: string } | undefined)?.code, 'AGENT_ERR_SINK_BUSY');
    assert.equal(abandoned(), 1);
    assert.equal(held.get(TEMP), 5, 'the cursor stays at what the broker acknowledged');
    // A PUBACK that comes after the write was given up moves nothing.
    link.acknowledge(10);
    await flush();
    assert.equal(held.get(TEMP), 5);
    assert.equal(pipeline.stats().expired, 1);
  });

  it('sends again, whole, every write not settled when the connection broke; late PUBACKs count for nothing', async () => {
    const { link, pipeline, held } = setUp({ messages: 4, bytes: 1024 * 1024 });
    const write = settled(pipeline.accept(pointEntries(TEMP, 1, 6), new Map([[TEMP, 6]])));
    link.acknowledge(3);
    await flush();
    const lateAcks = link.break();
    pipeline.disconnected();
    for (const ack of lateAcks) ack();
    await flush();
    assert.equal(write.done, false);
    assert.equal(held.get(TEMP), undefined);
    // 1-3 acknowledged, 4-6 in flight (the window had room again).
    assert.equal(pipeline.stats().interrupted, 3);
    link.connected = true;
    pipeline.connected([]);
    const resent = link.sent
      .slice(-4)
      .map((message) => JSON.parse(message.payload.toString()) as { seq: number });
    assert.deepEqual(
      resent.map((payload) => payload.seq),
      [1, 2, 3, 4],
    );
    while (link.unacknowledged > 0) link.acknowledge(link.unacknowledged);
    await flush();
    assert.equal(link.sent.length, 6 + 6, 'the write sent twice, whole');
    assert.ok(write.done && write.error === undefined);
    assert.equal(held.get(TEMP), 6);
  });
});

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { pino } from 'pino';
import { Consumer, DEFAULT_REPLAY_WINDOW, type ConsumerLink } from '../../../agents/it/consumer.ts';
import { openJsonLinesSink, type JsonLinesSink } from '../../../agents/it/sinks/jsonl-sink.ts';
import type { Sink } from '../../../agents/it/sinks/sink.ts';
import { decodeResumeCursor, MIN_REPLAY_WINDOW, streamKey } from '../../../agents/points/resume-cursor.ts';
import { DmzError } from '../../../relay/protocol/errors.ts';
import { COUNT, EPOCH, origin, points, readingFor, replayEnd, resets, TEMP } from '../../support/points.ts';
import { expectNever, waitFor } from '../../support/wait.ts';
import { pointEntries, readAllLines } from './sinks/sink-fixture.ts';

const PEER = 'press-7';
const FILTER = 'press-7/#';
const OTHER_AGENT_TOPIC = 'press-8/line1/temp';
const NAMES = new Map([TEMP, COUNT, OTHER_AGENT_TOPIC].map((topic) => [streamKey(topic), topic]));

/**
 * A ConsumerLink that records each call in a line (`subscribe 1 temp=5`) and answers at once; a
 * subscribe with a cursor is answered as the OT agent's replay starts a round, with its origin.
 */
class FakeConsumerLink implements ConsumerLink {
  closed = false;
  consumer: Consumer | undefined;
  /** Whether a subscribe with a cursor is answered with a round's origin at once. */
  answersWithOrigin = true;
  readonly calls: string[] = [];
  readonly windows: number[] = [];
  /** The log epochs each cursor named. */
  readonly epochs: (readonly string[])[] = [];
  /** openSession calls that fail before one succeeds. */
  failOpens = 0;
  #sessions = 0;

  openSession(peer: string, filter: string): Promise<{ readonly session: number }> {
    this.calls.push(`open ${peer} ${filter}`);
    if (this.failOpens > 0) {
      this.failOpens--;
      return Promise.reject(new DmzError('RELAY_ERR_NO_SUCH_PEER'));
    }
    return Promise.resolve({ session: ++this.#sessions });
  }

  closeSession(session: number): void {
    this.calls.push(`close ${session}`);
  }

  subscribe(session: number, filter: string, resume?: Uint8Array): Promise<void> {
    let positions = 'live';
    if (resume !== undefined) {
      const cursor = decodeResumeCursor(resume);
      this.windows.push(cursor.window);
      this.epochs.push(cursor.epochs);
      positions = [...cursor.positions]
        .map(([key, seq]) => `${NAMES.get(key)?.split('/').at(-1) ?? key}=${seq}`)
        .join(',');
    }
    this.calls.push(`subscribe ${session} ${filter} ${positions}`.trimEnd());
    if (resume !== undefined && this.answersWithOrigin) this.consumer?.delivered(origin());
    return Promise.resolve();
  }

  unsubscribe(session: number, filter: string): Promise<void> {
    this.calls.push(`unsubscribe ${session} ${filter}`);
    return Promise.resolve();
  }

  /** Waits until the calls end with `expected`. */
  async callsEndWith(...expected: string[]): Promise<void> {
    await waitFor(
      () => JSON.stringify(this.calls.slice(-expected.length)) === JSON.stringify(expected),
      `calls ending with ${expected.join(' | ')}, have ${this.calls.join(' | ')}`,
    );
  }
}

/** A real file sink in a fresh directory; closed, then removed, when the test ends. */
async function openSink(t: TestContext): Promise<{ sink: JsonLinesSink; dir: string }> {
  const parent = await mkdtemp(join(tmpdir(), 'dmz-consumer-'));
  const dir = join(parent, 'sink');
  const sink = await openJsonLinesSink({ dir, name: 'historian' });
  t.after(async () => {
    await sink.close();
    await rm(parent, { recursive: true, force: true });
  });
  return { sink, dir };
}

function consumerOf(sink: Sink, window?: number): Consumer {
  return new Consumer({
    name: 'press-7',
    peer: PEER,
    filter: FILTER,
    sink,
    logger: pino({ level: 'silent' }),
    random: () => 0,
    ...(window === undefined ? {} : { window }),
  });
}

/** A consumer attached to a fresh link, its first round asked for. */
async function attached(
  sink: Sink,
  window?: number,
): Promise<{ consumer: Consumer; link: FakeConsumerLink }> {
  const consumer = consumerOf(sink, window);
  const link = new FakeConsumerLink();
  link.consumer = consumer;
  consumer.attach(link);
  await waitFor(() => link.calls.some((call) => call.startsWith('subscribe')), 'the first subscribe');
  return { consumer, link };
}

/** Per topic, the sequence numbers of the sink's point lines, in file order. */
async function sinkSeqs(dir: string): Promise<Record<string, number[]>> {
  const byTopic: Record<string, number[]> = {};
  for (const line of await readAllLines(dir)) {
    if (line['seq'] === undefined) continue;
    (byTopic[line['topic'] as string] ??= []).push(line['seq'] as number);
  }
  return byTopic;
}

const range = (first: number, last: number) =>
  Array.from({ length: last - first + 1 }, (_, index) => first + index);

describe('agents/it consumer', () => {
  it("opens its session on attach and subscribes with a cursor of the sink's streams under its filter", async (t) => {
    const { sink } = await openSink(t);
    await sink.write([...pointEntries(TEMP, 1, 5), ...pointEntries(OTHER_AGENT_TOPIC, 1, 9)]);
    const { consumer, link } = await attached(sink, MIN_REPLAY_WINDOW);
    assert.deepEqual(link.calls, [`open ${PEER} ${FILTER}`, `subscribe 1 ${FILTER} temp=5`]);
    assert.deepEqual(link.windows, [MIN_REPLAY_WINDOW]);
    assert.ok(consumer.handles(1) && !consumer.handles(2));
    assert.equal(consumer.stats().state, 'replaying');
  });

  it('asks for everything with the default window when the sink holds nothing', async (t) => {
    const { sink } = await openSink(t);
    const { link } = await attached(sink);
    assert.deepEqual(link.calls.at(-1), `subscribe 1 ${FILTER}`);
    assert.deepEqual(link.windows, [DEFAULT_REPLAY_WINDOW]);
  });

  it('writes what is delivered to the sink exactly once, in order, whatever overlaps', async (t) => {
    const { sink, dir } = await openSink(t);
    await sink.write(pointEntries(TEMP, 1, 5));
    const { consumer } = await attached(sink);
    for (const batch of [
      points(6, 5),
      points(8, 5),
      points(6, 5),
      points(1, 3, COUNT),
      points(13, 3),
      points(2, 3, COUNT),
    ]) {
      consumer.delivered(batch);
    }
    await waitFor(() => sink.lastSeq(TEMP) === 15 && sink.lastSeq(COUNT) === 4, 'the points in the sink');
    assert.deepEqual(await sinkSeqs(dir), { [TEMP]: range(1, 15), [COUNT]: range(1, 4) });
    const lines = await readAllLines(dir);
    assert.deepEqual(
      lines.find((line) => line['topic'] === COUNT && line['seq'] === 4)?.['value'],
      readingFor(4).value,
    );
    assert.equal(consumer.stats().pointsWritten, 14);
    assert.equal(consumer.stats().holes, 0);
  });

  it('asks for the next round with the cursor of what it wrote when a round ends with more', async (t) => {
    const { sink } = await openSink(t);
    const { consumer, link } = await attached(sink);
    consumer.delivered(points(1, 10));
    consumer.delivered(replayEnd(true));
    await link.callsEndWith(`unsubscribe 1 ${FILTER}`, `subscribe 1 ${FILTER} temp=10`);
    assert.equal(sink.lastSeq(TEMP), 10, 'the cursor went out once the points were on disk');
    assert.equal(consumer.stats().rounds, 2);
  });

  it('goes live after a round that ends without more, and a dropped notice asks for a round', async (t) => {
    const { sink } = await openSink(t);
    const { consumer, link } = await attached(sink);
    consumer.delivered(points(1, 4));
    consumer.delivered(replayEnd(false));
    assert.equal(consumer.stats().state, 'live');
    const calls = link.calls.length;

    consumer.dropped();
    assert.equal(consumer.stats().droppedNotices, 1);
    await link.callsEndWith(`unsubscribe 1 ${FILTER}`, `subscribe 1 ${FILTER} temp=4`);
    assert.equal(link.calls.length, calls + 2);
  });

  it('gives up the round on a dropped notice and asks for a new one at once: its end marker may be gone', async (t) => {
    const { sink, dir } = await openSink(t);
    const { consumer, link } = await attached(sink);
    consumer.delivered(points(1, 4));
    // The relay dropped the rest of the round (5..9) and its end marker; live data goes on.
    consumer.dropped();
    consumer.delivered(points(10, 1));
    consumer.delivered(points(11, 1));
    await link.callsEndWith(`unsubscribe 1 ${FILTER}`, `subscribe 1 ${FILTER} temp=4`);
    consumer.delivered(points(5, 7));
    consumer.delivered(replayEnd(false));
    await waitFor(() => sink.lastSeq(TEMP) === 11, 'the dropped points in the sink');
    assert.deepEqual(await sinkSeqs(dir), { [TEMP]: range(1, 11) });
    assert.equal(consumer.stats().state, 'live');
  });

  it('asks for a round when a batch leaves a hole, and fills it from the replay', async (t) => {
    const { sink, dir } = await openSink(t);
    const { consumer, link } = await attached(sink);
    consumer.delivered(points(1, 4));
    consumer.delivered(replayEnd(false));
    consumer.delivered(points(8, 2));
    assert.equal(consumer.stats().holes, 1);
    await link.callsEndWith(`unsubscribe 1 ${FILTER}`, `subscribe 1 ${FILTER} temp=4`);
    consumer.delivered(points(5, 5));
    consumer.delivered(replayEnd(false));
    await waitFor(() => sink.lastSeq(TEMP) === 9, 'the hole filled');
    assert.deepEqual(await sinkSeqs(dir), { [TEMP]: range(1, 9) });
    assert.equal(consumer.stats().state, 'live');
  });

  it('reopens its session after the relay closed it, and resumes from the sink', async (t) => {
    const { sink } = await openSink(t);
    const { consumer, link } = await attached(sink);
    consumer.delivered(points(1, 3));
    await waitFor(() => sink.lastSeq(TEMP) === 3, 'the points in the sink');
    consumer.sessionClosed('RELAY_ERR_SESSION_CLOSED', 'peer went away');
    assert.equal(consumer.handles(1), false);
    await link.callsEndWith(`open ${PEER} ${FILTER}`, `subscribe 2 ${FILTER} temp=3`);
    assert.ok(consumer.handles(2));
  });

  it("takes a session's points only once its round named the OT log's epochs, and names them in the next cursor", async (t) => {
    const { sink, dir } = await openSink(t);
    const consumer = consumerOf(sink);
    const link = new FakeConsumerLink();
    link.consumer = consumer;
    link.answersWithOrigin = false;
    consumer.attach(link);
    await link.callsEndWith(`subscribe 1 ${FILTER}`);
    assert.deepEqual(link.epochs, [[]], 'a sink that knows no epochs names none');
    consumer.delivered(points(1, 3));
    consumer.delivered(origin(['5c1e0f8a9b2d4e67', EPOCH]));
    consumer.delivered(points(1, 4));
    consumer.delivered(replayEnd(false));
    await waitFor(() => sink.lastSeq(TEMP) === 4, 'the points after the origin in the sink');
    assert.equal(consumer.stats().holes, 1, 'the batch before the origin was left to replay');
    await waitFor(() => sink.logEpochs('press-7').length === 2, 'the epochs in the sink');
    // Outside a round an origin is not believed.
    consumer.delivered(origin(['ffffffffffffffff']));
    consumer.dropped();
    await link.callsEndWith(`unsubscribe 1 ${FILTER}`, `subscribe 1 ${FILTER} temp=4`);
    assert.deepEqual(link.epochs.at(-1), ['5c1e0f8a9b2d4e67', EPOCH]);
    assert.deepEqual(await sinkSeqs(dir), { [TEMP]: range(1, 4) });
  });

  it('writes a reset and takes the stream from where it goes on, the sink knowing the new epochs', async (t) => {
    const { sink, dir } = await openSink(t);
    await sink.write(pointEntries(TEMP, 1, 9));
    const consumer = consumerOf(sink);
    const link = new FakeConsumerLink();
    link.consumer = consumer;
    link.answersWithOrigin = false;
    consumer.attach(link);
    await link.callsEndWith(`subscribe 1 ${FILTER} temp=9`);
    consumer.delivered(resets(new Map([[TEMP, 1]])));
    consumer.delivered(points(1, 3));
    consumer.delivered(replayEnd(false));
    await waitFor(() => consumer.stats().pointsWritten === 3, 'the new points written');
    assert.equal(consumer.stats().resetsWritten, 1);
    assert.deepEqual(sink.logEpochs('press-7'), [EPOCH]);
    const lines = await readAllLines(dir);
    assert.deepEqual(lines[9], {
      topic: TEMP,
      reset: { from: 1, held: 9, reason: 'the OT log was re-created' },
    });
    assert.deepEqual(
      lines.slice(10).map((line) => line['seq']),
      [1, 2, 3],
    );
  });

  it('retries a session the relay would not open', async (t) => {
    const { sink } = await openSink(t);
    const consumer = consumerOf(sink);
    const link = new FakeConsumerLink();
    link.failOpens = 2;
    consumer.attach(link);
    await link.callsEndWith(`open ${PEER} ${FILTER}`, `subscribe 1 ${FILTER}`);
    assert.equal(link.calls.filter((call) => call.startsWith('open')).length, 3);
  });

  it('does not reopen a session over a closed link, nor after detach', async (t) => {
    const { sink } = await openSink(t);
    const { consumer, link } = await attached(sink);
    link.closed = true;
    consumer.sessionClosed('RELAY_ERR_SESSION_CLOSED', 'link going');
    const second = await attached(sink);
    second.consumer.detach();
    second.consumer.sessionClosed('RELAY_ERR_SESSION_CLOSED', 'link gone');
    assert.equal(second.consumer.stats().state, 'offline');
    // A reopen would come at once (random 0: no backoff).
    await expectNever(() => link.calls.length > 2 || second.link.calls.length > 2, 'a reopen', 200);
  });

  it('forgets its session on detach and closes it on close, after the sink has what was handed to it', async (t) => {
    const { sink } = await openSink(t);
    const { consumer, link } = await attached(sink);
    consumer.delivered(points(1, 50));
    await consumer.close();
    assert.equal(sink.lastSeq(TEMP), 50, 'close waited for the sink');
    assert.equal(link.calls.at(-1), 'close 1');
    assert.equal(consumer.stats().state, 'offline');
    assert.equal(consumer.handles(1), false);
    consumer.attach(new FakeConsumerLink());
    assert.equal(consumer.stats().state, 'offline', 'a closed consumer stays closed');
  });

  it('replays from the sink cursor when the sink refuses a write while another is on its way', async (t) => {
    const { sink, dir } = await openSink(t);
    let writes = 0;
    const refusing: Sink = {
      name: sink.name,
      lastSeq: (topic) => sink.lastSeq(topic),
      cursors: () => sink.cursors(),
      logEpochs: (agent) => sink.logEpochs(agent),
      noteLogEpochs: (agent, epochs) => sink.noteLogEpochs(agent, epochs),
      close: () => sink.close(),
      write: (entries) => {
        writes++;
        return writes === 2 ? Promise.reject(new DmzError('AGENT_ERR_SINK_BUSY')) : sink.write(entries);
      },
    };
    const { consumer, link } = await attached(refusing);
    consumer.delivered(points(1, 3));
    consumer.delivered(points(4, 3));
    consumer.delivered(points(7, 3));
    await link.callsEndWith(`unsubscribe 1 ${FILTER}`, `subscribe 1 ${FILTER} temp=3`);
    assert.ok(consumer.stats().sinkFailures >= 1);
    consumer.delivered(points(4, 6));
    await waitFor(() => sink.lastSeq(TEMP) === 9, 'the refused points written by the replay');
    assert.deepEqual(await sinkSeqs(dir), { [TEMP]: range(1, 9) });
  });
});

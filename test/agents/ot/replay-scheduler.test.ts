import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import type { PublishingLink } from '../../../agents/ot/publishing-link.ts';
import { REPLAY_BUFFERED_BYTES, ReplayServer } from '../../../agents/ot/replay.ts';
import {
  MAX_ROUNDS_PER_LINK,
  MIN_ROUND_INTERVAL_MS,
  ReplayScheduler,
  type ReplaySchedulerOptions,
} from '../../../agents/ot/replay-scheduler.ts';
import { encodePointBatch } from '../../../agents/points/batch.ts';
import { encodePoint } from '../../../agents/points/point.ts';
import { encodeResumeCursor, MIN_REPLAY_WINDOW } from '../../../agents/points/resume-cursor.ts';
import { encodeReplayEnd } from '../../../agents/points/stream-record.ts';
import { expectNever, waitFor } from '../../support/wait.ts';
import { AGENT, TEMP } from '../../support/points.ts';
import { PointPublisher } from '../../../agents/ot/publisher.ts';
import { busiestSecond } from '../../support/rate-windows.ts';
import { readingsFor } from '../../support/points.ts';
import {
  BacklogLink,
  logPoints,
  nextTurn,
  openTempLog,
  pacedLink,
  range,
  RecordingLink,
} from './publishing-fixture.ts';

/** A round a test drives: it records its start and ends when the test says. */
interface Driven {
  readonly round: { cancelled: boolean };
  started: boolean;
  paced: PublishingLink | undefined;
  readonly finish: () => void;
  /** Settles once the scheduler is done with the round, whether it ran or not. */
  readonly done: Promise<void>;
}

function harness(options: ReplaySchedulerOptions) {
  const scheduler = new ReplayScheduler(options);
  const order: string[] = [];
  const start = (
    link: PublishingLink,
    key: string,
    body?: (paced: PublishingLink) => Promise<void>,
  ): Driven => {
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const round = { cancelled: false };
    // The round runs a turn later at the earliest: `driven` is set by then.
    const done = scheduler.run(link, key, round, async (paced) => {
      driven.started = true;
      driven.paced = paced;
      order.push(key);
      await (body === undefined ? finished : body(paced));
    });
    const driven: Driven = { round, started: false, paced: undefined, finish: () => finish(), done };
    return driven;
  };
  return { scheduler, order, start };
}

/** The default scheduler, counting the rounds it let run. */
class CountingScheduler extends ReplayScheduler {
  started = 0;

  override run(
    link: PublishingLink,
    key: string,
    round: { readonly cancelled: boolean },
    replay: (paced: PublishingLink) => Promise<void>,
  ): Promise<void> {
    return super.run(link, key, round, (paced) => {
      this.started++;
      return replay(paced);
    });
  }
}

function sendReplayEnd(paced: PublishingLink | undefined, more: boolean): void {
  paced?.publishBatch(`${AGENT}/_replay`, 0, encodePointBatch([encodeReplayEnd(more)]), 1, 7);
}

describe('agents/ot replay scheduler', () => {
  it('runs at most maxRoundsPerLink rounds of a link at once, the others in the order they came', async () => {
    const { scheduler, order, start } = harness({ maxRoundsPerLink: 2, minRoundIntervalMs: 0 });
    const link = new RecordingLink();
    const rounds = ['a', 'b', 'c', 'd', 'e'].map((key) => start(link, key));
    const elsewhere = new RecordingLink();
    start(elsewhere, 'a');
    await nextTurn();
    assert.deepEqual(scheduler.stats(link), { running: 2, waiting: 3 });
    assert.deepEqual(scheduler.stats(elsewhere), { running: 1, waiting: 0 }, 'another link does not wait');

    for (const [index, round] of rounds.entries()) {
      round.finish();
      await round.done;
      await nextTurn();
      const left = rounds.length - index - 1;
      assert.deepEqual(scheduler.stats(link), { running: Math.min(2, left), waiting: Math.max(0, left - 2) });
    }
    assert.deepEqual(
      order.filter((_, index) => index !== 1),
      ['a', 'b', 'c', 'd', 'e'],
    );
  });

  it('lets one round send at a time: each whenWritable waits its turn, then for the link', async () => {
    const { start } = harness({ maxRoundsPerLink: 3, minRoundIntervalMs: 0 });
    const link = new BacklogLink();
    // Over half a MiB a burst: 2400 points of about 250 bytes.
    const records = Array.from({ length: 2400 }, (_, index) =>
      encodePoint({ value: 'v'.repeat(240), quality: 'good', sourceTime: index }),
    );
    const sender = (key: string) => async (paced: PublishingLink) => {
      for (let burst = 0; burst < 3; burst++) {
        paced.publish(`${AGENT}/${key}`, 1, records, 7);
        await paced.whenWritable(REPLAY_BUFFERED_BYTES);
      }
    };
    const rounds = ['a', 'b', 'c'].map((key) => start(link, key, sender(key)));
    // The relay link wakes every waiter at each drain; only one round may send after it.
    const deadline = Date.now() + 5000;
    while (link.published.length < 9 && Date.now() < deadline) {
      await nextTurn();
      link.drain();
    }
    await Promise.all(rounds.map((round) => round.done));
    const burst = link.published[0]?.batchBytes ?? 0;
    assert.ok(burst > 512 * 1024, `${burst} bytes a burst`);
    assert.ok(link.peakBytes <= REPLAY_BUFFERED_BYTES + burst, `peak ${link.peakBytes} bytes queued`);
    assert.deepEqual(
      link.published.map((publish) => publish.topic.slice(AGENT.length + 1)),
      ['a', 'b', 'c', 'a', 'b', 'c', 'a', 'b', 'c'],
      'turns go round in order',
    );
  });

  const INTERVALS: [string, boolean | undefined, boolean][] = [
    ['ended without more', false, true],
    ['ended with no replay end (cancelled, failed)', undefined, true],
    ['ended with more', true, false],
  ];
  for (const [name, more, waits] of INTERVALS) {
    it(`${waits ? 'makes' : 'does not make'} a round of the same key wait out the interval after one that ${name}`, async () => {
      const INTERVAL = 400;
      const { start } = harness({ minRoundIntervalMs: INTERVAL });
      const link = new RecordingLink();
      const first = start(link, '7 a/#');
      await waitFor(() => first.started, 'the first round to start');
      const startedAt = Date.now();
      if (more !== undefined) sendReplayEnd(first.paced, more);
      first.finish();
      await first.done;

      const other = start(link, '7 b/#', () => Promise.resolve());
      const again = start(link, '7 a/#');
      await nextTurn();
      assert.ok(other.started, 'another key does not wait');
      if (waits) {
        await expectNever(() => again.started, 'the same key starting again', INTERVAL / 2);
        await waitFor(() => again.started, 'the same key to start once its interval is over');
        assert.ok(Date.now() - startedAt >= INTERVAL - 20, `started ${Date.now() - startedAt} ms after`);
      } else {
        assert.ok(again.started, 'the next window is asked for at once');
      }
      again.finish();
      await Promise.all([other.done, again.done]);
    });
  }

  it('drops a waiting round that was cancelled or replaced; the replacement keeps its place', async () => {
    const { order, start } = harness({ maxRoundsPerLink: 1, minRoundIntervalMs: 0 });
    const link = new RecordingLink();
    const running = start(link, 'r');
    const older = start(link, 'a');
    const other = start(link, 'b');
    const cancelled = start(link, 'c');
    await nextTurn();
    const newer = start(link, 'a');
    cancelled.round.cancelled = true;
    await older.done;
    running.finish();
    await waitFor(() => newer.started, 'the replacement to start');
    assert.deepEqual(
      order,
      ['r', 'a'],
      'the newer round of "a" runs before "b", which came after the older one',
    );
    assert.equal(older.started, false);
    newer.finish();
    await waitFor(() => other.started, '"b" to start');
    other.finish();
    await Promise.all([cancelled.done, newer.done, other.done]);
    assert.deepEqual(order, ['r', 'a', 'b']);
  });

  it('runs no waiting round once its link closed', async () => {
    const { start } = harness({ maxRoundsPerLink: 1, minRoundIntervalMs: 0 });
    const link = new RecordingLink();
    const running = start(link, 'r');
    const waiting = start(link, 'a');
    await nextTurn();
    link.closed = true;
    running.finish();
    await waiting.done;
    assert.equal(waiting.started, false);
  });

  it('gives the turn of a round cancelled while it waits for the link to the next round', async () => {
    const { start } = harness({ minRoundIntervalMs: 0 });
    const link = new RecordingLink();
    link.hold();
    const first = start(link, 'a', async (paced) => {
      await paced.whenWritable(REPLAY_BUFFERED_BYTES);
    });
    await waitFor(() => link.writableCalls.length === 1, 'the first round to wait for the link');
    first.round.cancelled = true;
    const second = start(link, 'b', (paced) => paced.whenWritable(REPLAY_BUFFERED_BYTES));
    await first.done;
    await waitFor(() => link.writableCalls.length === 2, 'the second round to wait for the link itself');
    link.release();
    await second.done;
    assert.ok(second.started);
  });
});

describe('agents/ot replay server, paced by the scheduler', () => {
  const STREAMS = MAX_ROUNDS_PER_LINK + 2;
  const POINTS = 8192;
  const text = 'v'.repeat(230);

  async function bigLog(t: TestContext) {
    const log = await openTempLog(t, {
      maxBytes: 64 * 1024 * 1024,
      maxAgeMs: 3_600_000,
      segmentBytes: 8 * 1024 * 1024,
    });
    for (let stream = 0; stream < STREAMS; stream++) {
      for (let first = 1; first <= POINTS; first += 4096) {
        const records = Array.from({ length: 4096 }, (_, index) =>
          encodePoint({ value: text, quality: 'good', sourceTime: first + index }),
        );
        await log.append(`${AGENT}/line1/p${stream}`, records);
      }
    }
    return log;
  }

  it('keeps concurrent rounds of one link to about one round queued at the link', async (t) => {
    const log = await bigLog(t);
    const server = new ReplayServer(log, AGENT, (error) => assert.fail(String(error)));
    const link = new BacklogLink();
    const resume = encodeResumeCursor(POINTS * 2, new Map());
    for (let stream = 0; stream < STREAMS; stream++) {
      server.subscribed(link, { session: 7, filter: `${AGENT}/line1/p${stream}`, resume });
    }
    const deadline = Date.now() + 20_000;
    while (link.replayEnds().length < STREAMS && Date.now() < deadline) {
      await nextTurn();
      link.drain();
    }
    assert.equal(link.replayEnds().length, STREAMS);
    for (let stream = 0; stream < STREAMS; stream++) {
      const seqs = link.published
        .filter((publish) => publish.topic === `${AGENT}/line1/p${stream}` && publish.seq > 0)
        .flatMap((publish) => publish.records.map((_, index) => publish.seq + index));
      assert.deepEqual(
        seqs,
        Array.from({ length: POINTS }, (_, index) => index + 1),
        `p${stream} once, in order`,
      );
    }
    // One read is at most MAX_POINTS_PER_FRAME records: about 1 MiB of these points.
    const burst = Math.max(...link.published.map((publish) => publish.batchBytes));
    assert.ok(
      link.peakBytes <= REPLAY_BUFFERED_BYTES + burst,
      `peak ${(link.peakBytes / 1024 ** 2).toFixed(1)} MiB queued, bursts of ${(burst / 1024 ** 2).toFixed(1)} MiB`,
    );
  });

  it('starts no more than one round per interval for a subscribe/unsubscribe storm of one filter', async (t) => {
    const log = await openTempLog(t, { maxBytes: 1024 * 1024, maxAgeMs: 3_600_000, segmentBytes: 64 * 1024 });
    await logPoints(log, TEMP, 50);
    const scheduler = new CountingScheduler();
    const server = new ReplayServer(log, AGENT, (error) => assert.fail(String(error)), scheduler);
    const link = new RecordingLink();
    const resume = encodeResumeCursor(MIN_REPLAY_WINDOW, new Map());
    const request = { session: 7, filter: `${AGENT}/#`, resume };
    const firstAt = Date.now();
    for (let pair = 0; pair < 20; pair++) {
      server.subscribed(link, request);
      await nextTurn();
      server.unsubscribed(request.session, request.filter);
    }
    assert.equal(scheduler.started, 1, 'only the first of 20 rounds ran');
    server.subscribed(link, request);
    await waitFor(() => link.replayEnds().length === 1, 'the last subscribe to be served');
    assert.ok(Date.now() - firstAt >= MIN_ROUND_INTERVAL_MS - 20, 'once the interval was over');
    assert.equal(scheduler.started, 2);
    assert.deepEqual(link.pointSeqs(TEMP).slice(-50), range(1, 50));
  });

  it("shares the link's send budget with live data: together under the relay's rates, both getting through", async (t) => {
    const log = await openTempLog(t, {
      maxBytes: 8 * 1024 * 1024,
      maxAgeMs: 3_600_000,
      segmentBytes: 1024 * 1024,
    });
    const REPLAYED = `${AGENT}/line1/history`;
    const LIVE = `${AGENT}/line2/now`;
    await logPoints(log, REPLAYED, 3000);
    const limits = { messagesPerSecond: 100, bytesPerSecond: 64 * 1024 };
    const { link, advance } = pacedLink(t, limits);
    const server = new ReplayServer(log, AGENT, (error) => assert.fail(String(error)));
    const publisher = new PointPublisher(log, AGENT);
    publisher.useLink(link);
    server.subscribed(link, {
      session: 7,
      filter: `${AGENT}/line1/#`,
      resume: encodeResumeCursor(65_536, new Map()),
    });
    // Live demand alone is about the message rate: a point every 10 simulated ms.
    let written = 0;
    await waitFor(
      async () => {
        advance(10);
        if (written < 300) await publisher.write(LIVE, readingsFor(++written, 1));
        return written === 300 && link.replayEnds().length === 1 && link.pointSeqs(LIVE).length === 300;
      },
      'the round ended and every live point sent',
      60_000,
      2,
    );
    assert.deepEqual(link.pointSeqs(REPLAYED, 7), range(1, 3000));
    assert.deepEqual(link.pointSeqs(LIVE), range(1, 300));
    const { frames, bytes } = busiestSecond(link.sentAt, link.frameBytes);
    assert.ok(frames < limits.messagesPerSecond, `${frames} frames in one second`);
    assert.ok(bytes < limits.bytesPerSecond, `${bytes} bytes in one second`);
    // Taking turns: live frames went out while the round was still sending.
    const replayFrames = link.published.flatMap((publish, index) => (publish.session === 7 ? [index] : []));
    const liveDuringRound = link.published.filter(
      (publish, index) =>
        publish.topic === LIVE && index > (replayFrames[0] ?? 0) && index < (replayFrames.at(-1) ?? 0),
    );
    assert.ok(liveDuringRound.length > 0, 'live data waited for the whole round');
  });
});

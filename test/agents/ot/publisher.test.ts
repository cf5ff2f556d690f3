import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { BURST_SECONDS, RATE_SHARE } from '../../../agents/link/send-budget.ts';
import type { StreamLog } from '../../../agents/ot/log/stream-log.ts';
import { LIVE_BUFFERED_BYTES, PointPublisher } from '../../../agents/ot/publisher.ts';
import { MAX_READINGS_PER_WRITE } from '../../../agents/ot/sources/source.ts';
import type { PointReading } from '../../../agents/points/point.ts';
import { busiestSecond } from '../../support/rate-windows.ts';
import { expectNever, waitFor } from '../../support/wait.ts';
import { AGENT, COUNT, readingsFor, TEMP } from '../../support/points.ts';
import { rejectionCode } from './log/log-fixture.ts';
import {
  countingReads,
  nextTurn,
  openTempLog,
  pacedLink,
  range,
  RecordingLink,
  wrapLog,
} from './publishing-fixture.ts';

function openLog(t: TestContext): Promise<StreamLog> {
  return openTempLog(t, { maxBytes: 4 * 1024 * 1024, maxAgeMs: 3_600_000, segmentBytes: 256 * 1024 });
}

/** `log`, with each append resolving only once the test opens its gate (after it is durable). */
function gatedAppends(log: StreamLog): { readonly log: StreamLog; open(): void } {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => {
    open = resolve;
  });
  const gated = wrapLog(log, {
    append: async (stream, records) => {
      const result = await log.append(stream, records);
      await gate;
      return result;
    },
  });
  return { log: gated, open: () => open() };
}

/** `log`, with its reads (the catch-up reads every skipped stream in one pass) held until the test opens the gate. */
function gatedReads(log: StreamLog): { readonly log: StreamLog; started(): number; open(): void } {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => {
    open = resolve;
  });
  let started = 0;
  const gated = wrapLog(log, {
    readStreams: async (from, maxRecords) => {
      started++;
      await gate;
      return log.readStreams(from, maxRecords);
    },
  });
  return { log: gated, started: () => started, open: () => open() };
}

describe('agents/ot point publisher', () => {
  it('sends points only once their append resolved, at the sequence numbers the log gave them', async (t) => {
    const log = await openLog(t);
    const gated = gatedAppends(log);
    const publisher = new PointPublisher(gated.log, AGENT);
    const link = new RecordingLink();
    publisher.useLink(link);

    const written = publisher.write(TEMP, readingsFor(1, 3));
    await waitFor(() => log.lastSeq(TEMP) === 3, 'the points to be durable');
    assert.equal(link.published.length, 0, 'durable, but the append has not resolved yet');
    gated.open();
    await written;
    assert.deepEqual(link.pointSeqs(TEMP), [1, 2, 3]);
    assert.equal(link.published[0]?.session, undefined, 'live data goes to every subscriber');

    await publisher.write(TEMP, readingsFor(4, 2));
    await publisher.write(COUNT, readingsFor(1, 1));
    assert.deepEqual(link.pointSeqs(TEMP), range(1, 5));
    assert.deepEqual(link.pointSeqs(COUNT), [1]);
    assert.deepEqual(publisher.stats(), { pointsLogged: 6, pointsSent: 6, pointsLeftToReplay: 0 });
  });

  it('sends a large write in frames the link takes, in order', async (t) => {
    const publisher = new PointPublisher(await openLog(t), AGENT);
    const link = new RecordingLink(2048);
    publisher.useLink(link);
    await publisher.write(TEMP, readingsFor(1, 1000));
    assert.ok(link.published.length > 1, `${link.published.length} frames`);
    assert.deepEqual(link.pointSeqs(TEMP), range(1, 1000));
  });

  const UNSENT: [string, (link: RecordingLink, publisher: PointPublisher) => void, boolean][] = [
    ['no link', (_, publisher) => publisher.useLink(undefined), false],
    [
      'a closed link',
      (link) => {
        link.closed = true;
      },
      false,
    ],
    [
      'a link holding more than LIVE_BUFFERED_BYTES',
      (link) => {
        // ...and staying full: once it drains, the skipped points go (tests below).
        link.bufferedBytes = LIVE_BUFFERED_BYTES + 1;
        link.hold();
      },
      false,
    ],
    [
      'a link holding exactly LIVE_BUFFERED_BYTES',
      (link) => {
        link.bufferedBytes = LIVE_BUFFERED_BYTES;
      },
      true,
    ],
  ];
  for (const [name, arrange, sent] of UNSENT) {
    it(`${sent ? 'sends' : 'logs but leaves to replay'} points with ${name}`, async (t) => {
      const log = await openLog(t);
      const publisher = new PointPublisher(log, AGENT);
      const link = new RecordingLink();
      publisher.useLink(link);
      arrange(link, publisher);
      await publisher.write(TEMP, readingsFor(1, 4));
      assert.equal(log.lastSeq(TEMP), 4, 'durable either way');
      assert.deepEqual(link.pointSeqs(TEMP), sent ? [1, 2, 3, 4] : []);
      assert.deepEqual(publisher.stats(), {
        pointsLogged: 4,
        pointsSent: sent ? 4 : 0,
        pointsLeftToReplay: sent ? 0 : 4,
      });
    });
  }

  it('sends to the link it has now: later points once a link is back', async (t) => {
    const publisher = new PointPublisher(await openLog(t), AGENT);
    await publisher.write(TEMP, readingsFor(1, 2));
    const link = new RecordingLink();
    publisher.useLink(link);
    await publisher.write(TEMP, readingsFor(3, 2));
    assert.deepEqual(link.pointSeqs(TEMP), [3, 4]);
    assert.deepEqual(publisher.stats(), { pointsLogged: 4, pointsSent: 2, pointsLeftToReplay: 2 });
  });

  it('sends what it skipped while the link was full once it drains, exactly once, in order, though the streams went quiet', async (t) => {
    const publisher = new PointPublisher(await openLog(t), AGENT);
    const link = new RecordingLink(2048);
    publisher.useLink(link);
    await publisher.write(TEMP, readingsFor(1, 3));
    link.bufferedBytes = LIVE_BUFFERED_BYTES + 1;
    link.hold();
    await publisher.write(TEMP, readingsFor(4, 300));
    await publisher.write(TEMP, readingsFor(304, 6));
    await publisher.write(COUNT, readingsFor(1, 2));
    await nextTurn();
    assert.deepEqual(link.pointSeqs(TEMP), [1, 2, 3]);
    assert.deepEqual(link.pointSeqs(COUNT), []);
    assert.deepEqual(publisher.stats(), { pointsLogged: 311, pointsSent: 3, pointsLeftToReplay: 308 });

    // Nothing more is written: only the link draining can bring the tail out.
    link.bufferedBytes = 0;
    link.release();
    await waitFor(() => link.pointSeqs(COUNT).length === 2, 'the skipped points to be sent');
    assert.deepEqual(link.pointSeqs(TEMP), range(1, 309));
    assert.deepEqual(link.pointSeqs(COUNT), [1, 2]);
    assert.ok(link.published.length > 4, `in frames the link takes: ${link.published.length}`);
    assert.ok(
      link.published.every((publish) => publish.session === undefined),
      'as live data',
    );
    assert.deepEqual(publisher.stats(), { pointsLogged: 311, pointsSent: 311, pointsLeftToReplay: 308 });

    await publisher.write(TEMP, readingsFor(310, 1));
    assert.deepEqual(link.pointSeqs(TEMP), range(1, 310), 'and live again after');
    await expectNever(() => link.pointSeqs(COUNT).length > 2, 'a skipped point sent twice', 100);
  });

  it('keeps later points of a stream behind its skipped run, even while that run is read back', async (t) => {
    const log = await openLog(t);
    const reads = gatedReads(log);
    const publisher = new PointPublisher(reads.log, AGENT);
    const link = new RecordingLink();
    publisher.useLink(link);
    link.bufferedBytes = LIVE_BUFFERED_BYTES + 1;
    link.hold();
    await publisher.write(TEMP, readingsFor(1, 3));
    link.bufferedBytes = 0;
    await publisher.write(TEMP, readingsFor(4, 2));
    assert.deepEqual(link.pointSeqs(TEMP), [], 'the link has room, but 1-3 go first');
    link.release();
    await waitFor(() => reads.started() === 1, 'the skipped run to be read back');
    await publisher.write(TEMP, readingsFor(6, 2));
    assert.deepEqual(link.pointSeqs(TEMP), []);
    reads.open();
    await waitFor(() => link.pointSeqs(TEMP).length >= 7, 'the run and what joined it');
    assert.deepEqual(link.pointSeqs(TEMP), range(1, 7));
    assert.deepEqual(publisher.stats(), { pointsLogged: 7, pointsSent: 7, pointsLeftToReplay: 7 });
  });

  it('reads what every skipped stream lacks in one pass over the log, not one read per stream', async (t) => {
    const counted = countingReads(await openLog(t));
    const publisher = new PointPublisher(counted.log, AGENT);
    const link = new RecordingLink();
    publisher.useLink(link);
    link.bufferedBytes = LIVE_BUFFERED_BYTES + 1;
    link.hold();
    const topics = Array.from({ length: 50 }, (_, index) => `${AGENT}/line1/p${index}`);
    for (const topic of topics) await publisher.write(topic, readingsFor(1, 3));
    link.bufferedBytes = 0;
    link.release();
    await waitFor(
      () => topics.every((topic) => link.pointSeqs(topic).length === 3),
      'every skipped run sent',
    );
    for (const topic of topics) assert.deepEqual(link.pointSeqs(topic), [1, 2, 3]);
    assert.equal(counted.reads(), 1);
  });

  it('forgets what a link skipped once another link is used: consumers resume from their cursors', async (t) => {
    const publisher = new PointPublisher(await openLog(t), AGENT);
    const old = new RecordingLink();
    publisher.useLink(old);
    old.bufferedBytes = LIVE_BUFFERED_BYTES + 1;
    old.hold();
    await publisher.write(TEMP, readingsFor(1, 3));
    const link = new RecordingLink();
    publisher.useLink(link);
    await publisher.write(TEMP, readingsFor(4, 1));
    old.bufferedBytes = 0;
    old.release();
    await expectNever(() => old.published.length > 0 || link.published.length > 1, 'points 1-3 sent', 100);
    assert.deepEqual(link.pointSeqs(TEMP), [4]);
  });

  it('reports a skipped run it cannot read back, and sends later points live again', async (t) => {
    const log = await openLog(t);
    const failing = wrapLog(log, { readStreams: () => Promise.reject(new Error('read failed')) });
    const errors: unknown[] = [];
    const publisher = new PointPublisher(failing, AGENT, (error) => errors.push(error));
    const link = new RecordingLink();
    publisher.useLink(link);
    link.bufferedBytes = LIVE_BUFFERED_BYTES + 1;
    await publisher.write(TEMP, readingsFor(1, 2));
    link.bufferedBytes = 0;
    await waitFor(() => errors.length === 1, 'the failed read to be reported');
    await publisher.write(TEMP, readingsFor(3, 1));
    assert.deepEqual(link.pointSeqs(TEMP), [3], 'its consumers see the hole and replay 1-2');
  });

  const good = readingsFor(1, 1);
  const REFUSED: [string, string, readonly PointReading[], string][] = [
    ['a topic of another agent', 'press-8/line1/temp', good, 'RELAY_ERR_FORBIDDEN'],
    ['a topic that only starts with the agent name', 'press-70/line1/temp', good, 'RELAY_ERR_FORBIDDEN'],
    ['a topic with a wildcard', 'press-7/line1/+', good, 'RELAY_ERR_INVALID_TOPIC'],
    ['an empty topic level', 'press-7//temp', good, 'RELAY_ERR_INVALID_TOPIC'],
    [
      `more than MAX_READINGS_PER_WRITE (${MAX_READINGS_PER_WRITE}) readings`,
      TEMP,
      readingsFor(1, MAX_READINGS_PER_WRITE + 1),
      'AGENT_ERR_LOG_APPEND',
    ],
    [
      'one reading the model does not hold, among good ones',
      TEMP,
      [...readingsFor(1, 3), { value: Number.NaN, quality: 'good', sourceTime: 1 }],
      'AGENT_ERR_POINT_INVALID',
    ],
  ];
  for (const [name, topic, readings, code] of REFUSED) {
    it(`refuses ${name} with ${code}, logging and sending nothing`, async (t) => {
      const log = await openLog(t);
      const publisher = new PointPublisher(log, AGENT);
      const link = new RecordingLink();
      publisher.useLink(link);
      assert.equal(await rejectionCode(publisher.write(topic, readings)), code);
      assert.deepEqual(log.streams(), []);
      assert.equal(log.stats().records, 0);
      assert.deepEqual(link.published, []);
      assert.deepEqual(publisher.stats(), { pointsLogged: 0, pointsSent: 0, pointsLeftToReplay: 0 });
    });
  }

  it('takes a write of exactly MAX_READINGS_PER_WRITE readings', async (t) => {
    const log = await openLog(t);
    const publisher = new PointPublisher(log, AGENT);
    await publisher.write(TEMP, readingsFor(1, MAX_READINGS_PER_WRITE));
    assert.equal(log.lastSeq(TEMP), MAX_READINGS_PER_WRITE);
  });

  describe('under the rates the relay announced', () => {
    it('sends live only what the message budget holds; the rest follows from the log in one frame per stream', async (t) => {
      const publisher = new PointPublisher(await openLog(t), AGENT);
      const { link, advance } = pacedLink(t, { messagesPerSecond: 100 });
      publisher.useLink(link);
      const burst = Math.floor(100 * RATE_SHARE * BURST_SECONDS);
      for (let seq = 1; seq <= 50; seq++) await publisher.write(TEMP, readingsFor(seq, 1));
      for (let seq = 1; seq <= 20; seq++) await publisher.write(COUNT, readingsFor(seq, 1));
      assert.equal(link.published.length, burst, 'one frame per write, while the burst lasts');
      assert.deepEqual(link.pointSeqs(TEMP), range(1, burst));
      await expectNever(() => link.published.length > burst, 'a frame beyond the budget', 200);

      advance(1000);
      await waitFor(
        () => link.pointSeqs(TEMP).length === 50 && link.pointSeqs(COUNT).length === 20,
        'the skipped runs sent from the log',
      );
      assert.deepEqual(link.pointSeqs(TEMP), range(1, 50));
      assert.deepEqual(link.pointSeqs(COUNT), range(1, 20));
      assert.equal(link.published.length, burst + 2, 'each skipped run in one frame');
      assert.deepEqual(publisher.stats(), {
        pointsLogged: 70,
        pointsSent: 70,
        pointsLeftToReplay: 70 - burst,
      });
    });

    it('cuts frames to what the byte budget lets through and sends them one turn at a time', async (t) => {
      const publisher = new PointPublisher(await openLog(t), AGENT);
      const limit = 64 * 1024;
      const { link, advance } = pacedLink(t, { bytesPerSecond: limit });
      publisher.useLink(link);
      await publisher.write(TEMP, readingsFor(1, 2000));
      assert.equal(link.published.length, 0, 'a write larger than the burst is left to the log');
      // Simulated time moves 10 ms for every 5 ms of real time, in which the log's reads complete.
      await waitFor(
        () => {
          advance(10);
          return link.pointSeqs(TEMP).length === 2000;
        },
        'every point sent',
        30_000,
        5,
      );
      assert.deepEqual(link.pointSeqs(TEMP), range(1, 2000));
      assert.ok(link.frameBytes.every((bytes) => bytes <= link.budget.frameBytes));
      assert.ok(link.published.length > 10, `${link.published.length} frames`);
      const { bytes } = busiestSecond(link.sentAt, link.frameBytes);
      assert.ok(bytes < limit, `${bytes} bytes in one second against a limit of ${limit}`);
    });
  });
});

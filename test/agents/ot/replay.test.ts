import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { batchBudget } from '../../../agents/ot/frame-batches.ts';
import type { StreamLog, StreamLogOptions } from '../../../agents/ot/log/stream-log.ts';
import {
  markerTopic,
  REPLAY_BUFFERED_BYTES,
  ReplayServer,
  type ReplayRequest,
} from '../../../agents/ot/replay.ts';
import {
  encodeResumeCursor,
  MAX_CURSOR_EPOCHS,
  MIN_REPLAY_WINDOW,
  streamKey,
} from '../../../agents/points/resume-cursor.ts';
import { DmzError } from '../../../relay/protocol/errors.ts';
import { waitFor } from '../../support/wait.ts';
import { AGENT, COUNT, LEVEL, TEMP } from '../../support/points.ts';
import {
  countingReads,
  logPoints,
  nextTurn,
  openTempLog,
  range,
  RecordingLink,
} from './publishing-fixture.ts';

const SESSION = 7;
const ALL = `${AGENT}/#`;

interface Fixture {
  readonly log: StreamLog;
  readonly server: ReplayServer;
  readonly errors: [unknown, ReplayRequest][];
  readonly reads: () => number;
}

async function fixture(
  t: TestContext,
  options: Partial<Omit<StreamLogOptions, 'dir'>> = {},
): Promise<Fixture> {
  const real = await openTempLog(t, {
    maxBytes: 1024 * 1024,
    maxAgeMs: 3_600_000,
    segmentBytes: 64 * 1024,
    ...options,
  });
  const counted = countingReads(real);
  const errors: [unknown, ReplayRequest][] = [];
  const server = new ReplayServer(counted.log, AGENT, (error, request) => errors.push([error, request]));
  return { log: real, server, errors, reads: counted.reads };
}

/** A subscribe with a cursor holding `positions` (topic -> last sequence held). */
function subscribe(
  server: ReplayServer,
  link: RecordingLink,
  positions: Record<string, number>,
  { session = SESSION, filter = ALL, window = MIN_REPLAY_WINDOW, epochs = [] as readonly string[] } = {},
): void {
  const resume = encodeResumeCursor(window, new Map(Object.entries(positions)), epochs);
  server.subscribed(link, { session, filter, resume });
}

async function roundsEnded(link: RecordingLink, count: number): Promise<void> {
  await waitFor(() => link.replayEnds().length >= count, `${count} replay ends`);
}

describe('agents/ot replay server', () => {
  it('sends each stream what the cursor lacks, in frames, then a replay end on the marker topic', async (t) => {
    const { log, server, errors } = await fixture(t);
    await logPoints(log, TEMP, 300);
    await logPoints(log, COUNT, 40);
    // Small frames, so a stream's records go in several.
    const link = new RecordingLink(2048);
    subscribe(server, link, { [TEMP]: 120 });
    await roundsEnded(link, 1);

    assert.deepEqual(link.pointSeqs(TEMP), range(121, 300));
    assert.deepEqual(link.pointSeqs(COUNT), range(1, 40));
    const frames = link.published.filter((publish) => publish.topic === TEMP);
    assert.ok(frames.length > 1, `${frames.length} frames`);
    for (const frame of frames) assert.ok(frame.batchBytes <= batchBudget(2048), `${frame.batchBytes} bytes`);
    assert.ok(link.published.every((publish) => publish.session === SESSION));

    const end = link.published.at(-1);
    assert.deepEqual(end, {
      topic: markerTopic(ALL, AGENT),
      seq: 0,
      session: SESSION,
      batchBytes: 3,
      records: [{ kind: 'replayEnd', more: false }],
    });
    assert.equal(link.replayEnds().length, 1);
    assert.deepEqual(errors, []);
    assert.deepEqual(server.stats(), {
      rounds: 1,
      pointsReplayed: 180 + 40,
      gaps: 0,
      resets: 0,
      roundsActive: 0,
    });
    assert.deepEqual(link.writableCalls.slice(0, 1), [REPLAY_BUFFERED_BYTES]);
  });

  it('sends nothing but the origin and the replay end to a cursor that holds everything', async (t) => {
    const { log, server } = await fixture(t);
    await logPoints(log, TEMP, 10);
    const link = new RecordingLink();
    subscribe(server, link, { [TEMP]: 10 });
    await roundsEnded(link, 1);
    assert.deepEqual(
      link.published.map((publish) => publish.records),
      [[{ kind: 'origin', epochs: log.epochs(MAX_CURSOR_EPOCHS) }], [{ kind: 'replayEnd', more: false }]],
    );
  });

  it('ends a round at its window with more, and the next round from the new cursor continues', async (t) => {
    const { log, server } = await fixture(t, { maxBytes: 2 * 1024 * 1024, segmentBytes: 256 * 1024 });
    await logPoints(log, TEMP, 3000);
    await logPoints(log, COUNT, 3000);
    const link = new RecordingLink();
    subscribe(server, link, {});
    await roundsEnded(link, 1);
    assert.deepEqual(link.replayEnds()[0]?.records, [{ kind: 'replayEnd', more: true }]);
    // The window counts points across streams: all of the first, the rest of it from the second.
    assert.deepEqual(link.pointSeqs(TEMP), range(1, 3000));
    assert.deepEqual(link.pointSeqs(COUNT), range(1, MIN_REPLAY_WINDOW - 3000));

    link.published.splice(0);
    subscribe(server, link, { [TEMP]: 3000, [COUNT]: MIN_REPLAY_WINDOW - 3000 });
    await roundsEnded(link, 1);
    assert.deepEqual(link.replayEnds()[0]?.records, [{ kind: 'replayEnd', more: false }]);
    assert.deepEqual(link.pointSeqs(TEMP), []);
    assert.deepEqual(link.pointSeqs(COUNT), range(MIN_REPLAY_WINDOW - 3000 + 1, 3000));
    assert.equal(server.stats().pointsReplayed, 6000);
  });

  it('sends only the streams the filter matches, and ends on a marker topic inside the filter', async (t) => {
    const { log, server } = await fixture(t);
    await logPoints(log, TEMP, 5);
    await logPoints(log, LEVEL, 5);
    await logPoints(log, 'press-7/line10/temp', 5);
    const link = new RecordingLink();
    subscribe(server, link, {}, { filter: 'press-7/line1/+' });
    await roundsEnded(link, 1);
    assert.deepEqual(link.pointSeqs(TEMP), range(1, 5));
    assert.deepEqual(link.pointSeqs(LEVEL), []);
    assert.deepEqual(
      link.published.map((publish) => publish.topic),
      ['press-7/line1/_replay', TEMP, 'press-7/line1/_replay'],
    );
  });

  it('resets every stream a cursor of another log holds, names its own epochs, then replays from 1', async (t) => {
    const { log, server } = await fixture(t);
    await logPoints(log, TEMP, 50);
    await logPoints(log, COUNT, 20);
    const link = new RecordingLink();
    const gone = 'press-7/line9/gone';
    subscribe(
      server,
      link,
      { [TEMP]: 80, [COUNT]: 20, [gone]: 7, [LEVEL]: 0 },
      { epochs: ['ffffffffffffffff'] },
    );
    await roundsEnded(link, 1);
    const reason = log.agreement(['ffffffffffffffff']).reason;
    assert.deepEqual(link.published[0], {
      topic: markerTopic(ALL, AGENT),
      seq: 0,
      session: SESSION,
      batchBytes: link.published[0]?.batchBytes,
      records: [
        { kind: 'reset', key: streamKey(TEMP), from: 1, reason },
        { kind: 'reset', key: streamKey(COUNT), from: 1, reason },
        // Not seen again yet by the re-created log: reset for the same reason, not "no such stream".
        { kind: 'reset', key: streamKey(gone), from: 1, reason },
        { kind: 'origin', epochs: log.epochs(MAX_CURSOR_EPOCHS) },
      ],
    });
    assert.deepEqual(link.pointSeqs(TEMP), range(1, 50));
    assert.deepEqual(link.pointSeqs(COUNT), range(1, 20));
    assert.equal(server.stats().resets, 3);
  });

  it('resets a stream a cursor of this log holds but the log does not know, and keeps the rest', async (t) => {
    const { log, server } = await fixture(t);
    await logPoints(log, TEMP, 10);
    const link = new RecordingLink();
    const gone = 'press-7/line9/gone';
    subscribe(server, link, { [TEMP]: 10, [gone]: 7 }, { epochs: log.epochs(MAX_CURSOR_EPOCHS) });
    await roundsEnded(link, 1);
    assert.deepEqual(link.published[0]?.records, [
      { kind: 'reset', key: streamKey(gone), from: 1, reason: 'the OT log has no such stream' },
      { kind: 'origin', epochs: log.epochs(MAX_CURSOR_EPOCHS) },
    ]);
    assert.deepEqual(link.pointSeqs(TEMP), []);
    assert.equal(server.stats().resets, 1);
  });

  it("resets a stream a cursor naming no epochs holds beyond the log, to the log's next point", async (t) => {
    const { log, server } = await fixture(t);
    await logPoints(log, TEMP, 50);
    await logPoints(log, COUNT, 20);
    const link = new RecordingLink();
    subscribe(server, link, { [TEMP]: 80, [COUNT]: 15 });
    await roundsEnded(link, 1);
    assert.deepEqual(link.published[0]?.records, [
      { kind: 'reset', key: streamKey(TEMP), from: 51, reason: 'the OT log ends before this point' },
      { kind: 'origin', epochs: log.epochs(MAX_CURSOR_EPOCHS) },
    ]);
    assert.deepEqual(link.pointSeqs(TEMP), []);
    assert.deepEqual(link.pointSeqs(COUNT), range(16, 20));
  });

  it('resets nothing for a cursor of its own epochs within the log', async (t) => {
    const { log, server } = await fixture(t);
    await logPoints(log, TEMP, 50);
    const link = new RecordingLink();
    subscribe(server, link, { [TEMP]: 30 }, { epochs: log.epochs(2) });
    await roundsEnded(link, 1);
    assert.deepEqual(link.published[0]?.records, [{ kind: 'origin', epochs: log.epochs(MAX_CURSOR_EPOCHS) }]);
    assert.deepEqual(link.pointSeqs(TEMP), range(31, 50));
    assert.equal(server.stats().resets, 0);
  });

  it('cuts many resets into frames of the link, the origin last', async (t) => {
    const { log, server } = await fixture(t);
    const topics = Array.from({ length: 300 }, (_, index) => `press-7/many/s${index}`);
    for (const topic of topics) await logPoints(log, topic, 1);
    const link = new RecordingLink(4096);
    subscribe(server, link, Object.fromEntries(topics.map((topic) => [topic, 5])));
    await roundsEnded(link, 1);
    const markers = link.published
      .filter((publish) => publish.topic === markerTopic(ALL, AGENT))
      .slice(0, -1);
    assert.ok(markers.length > 1, `${markers.length} frames`);
    for (const frame of markers)
      assert.ok(frame.batchBytes <= batchBudget(4096), `${frame.batchBytes} bytes`);
    const records = markers.flatMap((frame) => frame.records);
    assert.equal(records.filter((record) => record.kind === 'reset').length, 300);
    assert.equal(records.at(-1)?.kind, 'origin');
  });

  const MARKERS: [string, string][] = [
    ['press-7/#', 'press-7/_replay'],
    ['press-7/line1/+', 'press-7/line1/_replay'],
    ['#', 'press-7/_replay'],
    ['+/line1/#', 'press-7/line1/_replay'],
    ['+/+/temp', 'press-7/_replay/temp'],
  ];
  for (const [filter, topic] of MARKERS) {
    it(`ends a round under ${filter} on ${topic}, inside the filter and the agent's namespace`, () => {
      assert.equal(markerTopic(filter, AGENT), topic);
    });
  }

  it('sends a gap record with the range retention deleted before the records still kept', async (t) => {
    // A tiny log: a 16 KiB budget of 4 KiB segments, so retention deletes the oldest at once.
    const { log, server } = await fixture(t, { maxBytes: 16 * 1024, segmentBytes: 4096 });
    // Small appends, so the stream spans many segments and retention keeps the newest of them.
    await logPoints(log, TEMP, 2000, 20);
    await logPoints(log, COUNT, 3);
    await log.enforceRetention();
    const firstKept = log.firstSeq(TEMP);
    assert.ok(firstKept > 6 && firstKept < 2000, `retention kept from ${firstKept}`);

    const link = new RecordingLink();
    subscribe(server, link, { [TEMP]: 5, [COUNT]: 3 });
    await roundsEnded(link, 1);
    const [gap, ...rest] = link.published.filter((publish) => publish.topic === TEMP);
    assert.deepEqual(gap, {
      topic: TEMP,
      seq: 6,
      session: SESSION,
      batchBytes: gap?.batchBytes,
      records: [{ kind: 'gap', to: firstKept - 1, reason: 'retention' }],
    });
    assert.equal(rest[0]?.seq, firstKept);
    assert.deepEqual(link.pointSeqs(TEMP), range(firstKept, 2000));
    assert.equal(server.stats().gaps, 1);
  });

  it('makes a newer subscribe of the same session and filter replace the running round', async (t) => {
    const { log, server, reads } = await fixture(t);
    await logPoints(log, TEMP, 200);
    await logPoints(log, COUNT, 50);
    const link = new RecordingLink();
    link.hold();
    subscribe(server, link, {});
    await waitFor(() => link.writableCalls.length === 1, 'the first round to wait for the link');
    assert.deepEqual(link.pointSeqs(TEMP), range(1, 200));

    subscribe(server, link, { [TEMP]: 200 });
    await waitFor(() => link.writableCalls.length === 2, 'the second round to wait for the link');
    link.release();
    await roundsEnded(link, 1);
    await nextTurn();
    // Once each: the first round stopped where it was, the second sent the rest and the one end.
    assert.deepEqual(link.pointSeqs(TEMP), range(1, 200));
    assert.deepEqual(link.pointSeqs(COUNT), range(1, 50));
    assert.equal(link.replayEnds().length, 1);
    assert.equal(reads(), 2);
    assert.deepEqual(server.stats(), { rounds: 2, pointsReplayed: 250, gaps: 0, resets: 0, roundsActive: 0 });
  });

  const CANCELS: [string, (server: ReplayServer, link: RecordingLink) => void, boolean][] = [
    ['sessionClosed of its session', (server) => server.sessionClosed(SESSION), true],
    ['linkClosed', (server) => server.linkClosed(), true],
    ['unsubscribed of its filter', (server) => server.unsubscribed(SESSION, ALL), true],
    [
      'the link closing',
      (_, link) => {
        link.closed = true;
      },
      true,
    ],
    ['sessionClosed of another session', (server) => server.sessionClosed(70), false],
    ['unsubscribed of another filter', (server) => server.unsubscribed(SESSION, TEMP), false],
  ];
  for (const [name, cancel, cancels] of CANCELS) {
    it(`${cancels ? 'stops' : 'keeps'} a running round on ${name}`, async (t) => {
      const { log, server, reads } = await fixture(t);
      await logPoints(log, TEMP, 20);
      await logPoints(log, COUNT, 20);
      const link = new RecordingLink();
      link.hold();
      subscribe(server, link, {});
      await waitFor(() => link.writableCalls.length === 1, 'the round to wait for the link');
      const sent = link.published.length;
      cancel(server, link);
      link.release();
      if (cancels) {
        // The round's next step ran in this turn: it neither read on nor sent its end.
        await nextTurn();
        assert.equal(reads(), 1);
        assert.equal(link.published.length, sent);
        assert.equal(server.stats().roundsActive, 0);
      } else {
        await roundsEnded(link, 1);
        assert.deepEqual(link.pointSeqs(COUNT), range(1, 20));
      }
    });
  }

  it('pauses a round while the link is not writable', async (t) => {
    const { log, server, reads } = await fixture(t);
    await logPoints(log, TEMP, 20);
    await logPoints(log, COUNT, 20);
    const link = new RecordingLink();
    link.hold();
    subscribe(server, link, {});
    await waitFor(() => link.writableCalls.length === 1, 'the round to wait for the link');
    await nextTurn();
    assert.equal(reads(), 1);
    assert.deepEqual(link.pointSeqs(TEMP), range(1, 20));
    assert.deepEqual(link.pointSeqs(COUNT), []);
    assert.equal(server.stats().roundsActive, 1);

    link.release();
    await roundsEnded(link, 1);
    assert.deepEqual(link.pointSeqs(COUNT), range(1, 20));
    assert.equal(server.stats().roundsActive, 0);
  });

  const MALFORMED: [string, Uint8Array][] = [
    ['an empty cursor', new Uint8Array(0)],
    ['an unknown version', Uint8Array.of(9, 0, 0x80, 0x20)],
    ['a window below one frame', Uint8Array.of(1, 0, 1)],
  ];
  for (const [name, resume] of MALFORMED) {
    it(`reports ${name} to onError and sends nothing`, async (t) => {
      const { log, server, errors, reads } = await fixture(t);
      await logPoints(log, TEMP, 5);
      const link = new RecordingLink();
      const request = { session: SESSION, filter: ALL, resume };
      server.subscribed(link, request);
      assert.equal(errors.length, 1);
      const [error, reported] = errors[0]!;
      assert.ok(error instanceof DmzError && error.code === 'AGENT_ERR_RESUME_CURSOR', String(error));
      assert.equal(reported, request);
      await nextTurn();
      assert.deepEqual(link.published, []);
      assert.equal(reads(), 0);
      assert.equal(server.stats().rounds, 0);
    });
  }

  it('replays nothing for a subscribe without a cursor: that consumer wants live data only', async (t) => {
    const { log, server, errors, reads } = await fixture(t);
    await logPoints(log, TEMP, 5);
    const link = new RecordingLink();
    server.subscribed(link, { session: SESSION, filter: ALL });
    await nextTurn();
    assert.deepEqual(link.published, []);
    assert.equal(reads(), 0);
    assert.deepEqual(errors, []);
  });

  it('reports a round that fails on the way to onError', async (t) => {
    const { log, server, errors } = await fixture(t);
    await logPoints(log, TEMP, 5);
    await log.close();
    const link = new RecordingLink();
    subscribe(server, link, {});
    const [error] = await waitFor(() => errors[0], 'the failed round to be reported');
    assert.ok(error instanceof DmzError && error.code === 'AGENT_ERR_LOG_CLOSED', String(error));
    assert.deepEqual(link.replayEnds(), []);
  });

  /** Thousands of tags sampled together, one append (one record) per tag per tick, in one segment. */
  const PLANT_LOG = { maxBytes: 64 * 1024 * 1024, segmentBytes: 4 * 1024 * 1024 } as const;

  async function logTicks(log: StreamLog, tags: number, ticks: number): Promise<string[]> {
    const topics = Array.from({ length: tags }, (_, index) => `${AGENT}/line1/tag${index}`);
    for (let tick = 0; tick < ticks; tick++)
      await Promise.all(topics.map((topic) => logPoints(log, topic, 1)));
    return topics;
  }

  it('replays thousands of 1 Hz streams in one round that reads each byte of the log about once', async (t) => {
    const { log, server, reads } = await fixture(t, PLANT_LOG);
    const topics = await logTicks(log, 2000, 3);
    const before = log.stats();
    const link = new RecordingLink();
    subscribe(server, link, {}, { window: 65_536 });
    await roundsEnded(link, 1);
    assert.deepEqual(link.replayEnds()[0]?.records, [{ kind: 'replayEnd', more: false }]);
    for (const topic of topics) assert.deepEqual(link.pointSeqs(topic), [1, 2, 3], topic);
    assert.equal(reads(), 1, 'one pass over the log');
    // Reading stream after stream walks the log once per stream: 2000 times these bytes.
    const scanned = log.stats().bytesScanned - before.bytesScanned;
    assert.ok(scanned <= before.bytesWritten, `${scanned} bytes scanned for a log of ${before.bytesWritten}`);
    assert.deepEqual(server.stats(), {
      rounds: 1,
      pointsReplayed: 6000,
      gaps: 0,
      resets: 0,
      roundsActive: 0,
    });
  });

  it('ends a round whose window fills mid-pass with more; the next round continues exactly', async (t) => {
    const { log, server } = await fixture(t, PLANT_LOG);
    const topics = await logTicks(log, 1500, 4);
    const link = new RecordingLink();
    subscribe(server, link, {});
    await roundsEnded(link, 1);
    assert.deepEqual(link.replayEnds()[0]?.records, [{ kind: 'replayEnd', more: true }]);
    // In log order: the first two ticks of every tag, then the third of the first 1096 (4096 in all).
    const held = new Map(topics.map((topic) => [topic, link.pointSeqs(topic).length]));
    topics.forEach((topic, index) => {
      assert.deepEqual(link.pointSeqs(topic), range(1, index < MIN_REPLAY_WINDOW - 3000 ? 3 : 2), topic);
    });

    link.published.splice(0);
    subscribe(server, link, Object.fromEntries(held));
    await roundsEnded(link, 1);
    assert.deepEqual(link.replayEnds()[0]?.records, [{ kind: 'replayEnd', more: false }]);
    for (const topic of topics)
      assert.deepEqual(link.pointSeqs(topic), range((held.get(topic) ?? 0) + 1, 4), topic);
    assert.equal(server.stats().pointsReplayed, 6000);
  });

  it('sends each stream of a round its own gap, before the records of that stream', async (t) => {
    const { log, server } = await fixture(t, { maxBytes: 16 * 1024, segmentBytes: 4096 });
    // Two streams written side by side, so both lose their oldest points to retention.
    for (let batch = 0; batch < 50; batch++) {
      await logPoints(log, TEMP, 20);
      await logPoints(log, COUNT, 20);
    }
    await logPoints(log, LEVEL, 3);
    await log.enforceRetention();
    const firstKept = new Map([TEMP, COUNT].map((topic) => [topic, log.firstSeq(topic)]));
    assert.ok(
      [...firstKept.values()].every((seq) => seq > 1 && seq < 1000),
      `kept from ${[...firstKept.values()].join(', ')}`,
    );

    const link = new RecordingLink();
    subscribe(server, link, {});
    await roundsEnded(link, 1);
    for (const [topic, first] of firstKept) {
      const [gap, records] = link.published.filter((publish) => publish.topic === topic);
      assert.equal(gap?.seq, 1, topic);
      assert.deepEqual(gap?.records, [{ kind: 'gap', to: first - 1, reason: 'retention' }], topic);
      assert.equal(records?.seq, first, topic);
      assert.deepEqual(link.pointSeqs(topic), range(first, 1000), topic);
    }
    assert.deepEqual(link.pointSeqs(LEVEL), [1, 2, 3]);
    assert.equal(server.stats().gaps, 2);
  });
});

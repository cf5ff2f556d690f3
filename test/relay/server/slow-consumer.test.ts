import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { encodeFrame } from '../../../relay/protocol/codec.ts';
import { RawAgent } from '../../support/raw-agent.ts';
import { startTestRelay, type RecordingAgent, type TestRelay } from '../../support/relay-harness.ts';
import { readMetric } from '../../support/metrics.ts';
import { createTestPki, type TestPki } from '../../support/test-pki.ts';
import { waitFor } from '../../support/wait.ts';
import { encodePointBatch } from '../../../agents/points/batch.ts';

const QUEUE_LIMIT = 256 * 1024;
const GRACE_MS = 500;
const POINT = new Uint8Array(64 * 1024).fill(0x5a);
const TOPIC = 'line-1/vibration';
/** Frames per burst: a healthy reader takes a burst without ever falling a whole queue behind. */
const BURST = 4;
/** Bounds on what one test may publish before it counts as a failure (about 75 MiB, 15 s). */
const MAX_FRAMES = 1200;
const MAX_PUBLISH_MS = 15_000;
/** WebSocket framing around one message: at most 14 bytes (RFC 6455 section 5.2). */
const WEBSOCKET_HEADER_BYTES = 14;
/** A session lease or ping may queue behind the data: a few dozen bytes each. */
const CONTROL_SLACK_BYTES = 128;

describe('relay/server slow consumers', () => {
  let pki: TestPki;
  let t: TestRelay;
  let ot: RecordingAgent;
  let healthy: RecordingAgent;
  let seq = 0;

  before(async () => {
    pki = await createTestPki();
    t = await startTestRelay(pki, {
      limits: {
        maxQueuedBytesPerConsumer: QUEUE_LIMIT,
        slowConsumerGraceMs: GRACE_MS,
        // The publisher here is fast on purpose; per-agent volume limits are another test's subject.
        bytesPerSecond: 1024 * 1024 * 1024,
      },
    });
    ot = await t.connect('ot', 'line-1');
    healthy = await t.connect('it', 'historian');
    const { session } = await healthy.client.openSession('line-1', 'line-1/#');
    await healthy.client.subscribe(session, 'line-1/#');
  });
  after(() => t.stop());

  /** Publishes one burst of 64 KiB points and waits until the healthy subscriber has all of it. */
  async function publishBurst(): Promise<void> {
    for (let i = 0; i < BURST; i++) ot.client.publish(TOPIC, ++seq, [POINT]);
    await healthy.next('deliver', (frame) => frame.seq === seq);
  }

  /** An IT consumer built by hand, subscribed to everything line-1 publishes, that can stop reading. */
  async function rawSubscriber(name: string): Promise<{ raw: RawAgent; session: number }> {
    const credentials = await pki.issueAgent('it', name);
    const raw = await RawAgent.open({ url: t.url, caPem: pki.ca.certPem, ...credentials });
    raw.send({ type: 'sessionOpen', ref: 1, peer: 'line-1', filter: 'line-1/#' });
    const { session } = await raw.next('sessionAccept');
    raw.send({ type: 'subscribe', ref: 2, session, filter: 'line-1/#' });
    await raw.next('ack', (frame) => frame.ref === 2);
    return { raw, session };
  }

  function assertHealthyGotEverything(): void {
    const seqs = healthy.frames.flatMap((frame) => (frame.type === 'deliver' ? [frame.seq] : []));
    assert.equal(seqs.length, seq, 'the healthy subscriber lost points');
    assert.ok(
      seqs.every((value, index) => value === index + 1),
      'the healthy subscriber got points out of order',
    );
    assert.equal(healthy.frames.filter((frame) => frame.type === 'dropped').length, 0);
    assert.equal(healthy.closed, undefined);
  }

  it('relay - a consumer that stops reading loses live points, then its connection; others lose nothing', async () => {
    const { raw, session } = await rawSubscriber('dashboard');
    try {
      raw.pauseReading();
      const droppedBefore = await readMetric(t.relay, 'dmz_relay_points_dropped_total');
      const cutOff = () =>
        t.audit.entries.find(
          (entry) =>
            entry.event === 'agent.disconnected' &&
            entry['agent'] === 'dashboard' &&
            entry['reason'] === 'RELAY_ERR_SLOW_CONSUMER',
        );
      let largestQueue = 0;
      let firstDropBurstStart: number | undefined;
      let samplesWhileDropping = 0;
      const started = Date.now();
      let published = 0;
      while (cutOff() === undefined) {
        assert.ok(
          published < MAX_FRAMES && Date.now() - started < MAX_PUBLISH_MS,
          `slow consumer still connected after ${published} frames in ${Date.now() - started} ms`,
        );
        const burstStart = Date.now();
        await publishBurst();
        published += BURST;
        const dropping = (await readMetric(t.relay, 'dmz_relay_points_dropped_total')) > droppedBefore;
        if (cutOff() !== undefined) break;
        largestQueue = Math.max(largestQueue, await readMetric(t.relay, 'dmz_relay_max_queued_bytes'));
        if (dropping) {
          firstDropBurstStart ??= burstStart;
          samplesWhileDropping++;
        }
      }

      // Memory stays bounded: the relay queued at most its limit plus the one frame that crossed it.
      const oneFrame =
        encodeFrame({
          type: 'deliver',
          session,
          topic: TOPIC,
          seq,
          count: 1,
          points: encodePointBatch([POINT]),
        }).byteLength + WEBSOCKET_HEADER_BYTES;
      assert.ok(samplesWhileDropping > 0, 'the queue was never sampled while points were dropped');
      assert.ok(largestQueue > QUEUE_LIMIT, `queue ${largestQueue} never reached the limit`);
      assert.ok(
        largestQueue <= QUEUE_LIMIT + oneFrame + CONTROL_SLACK_BYTES,
        `queue grew to ${largestQueue} bytes, limit ${QUEUE_LIMIT} + one frame ${oneFrame}`,
      );

      // Cut off only after the grace period, and not long after it.
      const cutAt = Date.parse(String(cutOff()!['time']));
      assert.ok(firstDropBurstStart !== undefined);
      const sinceDropsBegan = cutAt - firstDropBurstStart;
      assert.ok(sinceDropsBegan >= GRACE_MS, `cut off ${sinceDropsBegan} ms after drops began`);
      assert.ok(
        sinceDropsBegan <= GRACE_MS + 2_000,
        `cut off as late as ${sinceDropsBegan} ms after drops began`,
      );
      assert.equal(
        await readMetric(t.relay, 'dmz_relay_disconnects_total', { reason: 'RELAY_ERR_SLOW_CONSUMER' }),
        1,
      );

      // The consumer, once it reads again, finds its connection gone.
      raw.resumeReading();
      const closed = await raw.waitClosed(10_000);
      assert.deepEqual(closed, { code: 1013, reason: 'RELAY_ERR_SLOW_CONSUMER' });
      assertHealthyGotEverything();
    } finally {
      raw.terminate();
    }
  });

  it('relay - a consumer that is only briefly slow is told how many points it missed', async () => {
    const { raw, session } = await rawSubscriber('trend-viewer');
    try {
      raw.pauseReading();
      const droppedBefore = await readMetric(t.relay, 'dmz_relay_points_dropped_total');
      const started = Date.now();
      while ((await readMetric(t.relay, 'dmz_relay_points_dropped_total')) === droppedBefore) {
        assert.ok(Date.now() - started < MAX_PUBLISH_MS, 'the relay never dropped a point');
        await publishBurst();
      }
      raw.resumeReading();
      // Once its backlog is written out, the relay stops dropping for it.
      await waitFor(
        async () => (await readMetric(t.relay, 'dmz_relay_max_queued_bytes')) <= QUEUE_LIMIT,
        'the consumer to drain its backlog',
      );
      const dropped = (await readMetric(t.relay, 'dmz_relay_points_dropped_total')) - droppedBefore;
      ot.client.publish(TOPIC, ++seq, [new Uint8Array([1])]);
      const next = await raw.next('deliver', (frame) => frame.seq === seq);

      // Right before that delivery: the report of the hole, exactly as large as the hole.
      const index = raw.frames.indexOf(next);
      const report = raw.frames[index - 1];
      assert.equal(report?.type, 'dropped', 'no dropped frame right before the next delivery');
      assert.equal(report.session, session);
      const lastBefore = raw.frames.slice(0, index - 1).findLast((frame) => frame.type === 'deliver');
      assert.ok(lastBefore?.type === 'deliver', 'nothing was delivered before the drops');
      assert.equal(
        report.points,
        next.seq - lastBefore.seq - 1,
        'reported count differs from the gap in seq',
      );
      assert.equal(report.points, dropped, 'reported count differs from what the relay counted');
      assert.equal(raw.frames.filter((frame) => frame.type === 'dropped').length, 1);
      assert.equal(raw.closed, undefined, 'a briefly slow consumer keeps its connection');
      await healthy.next('deliver', (frame) => frame.seq === seq);
      assertHealthyGotEverything();
    } finally {
      raw.terminate();
    }
  });
});

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ToAgentFrame, ToRelayFrame } from '../../../relay/protocol/frames.ts';
import { RawAgent } from '../../support/raw-agent.ts';
import {
  startTestRelay,
  type FrameRecorder,
  type RecordingAgent,
  type TestRelay,
} from '../../support/relay-harness.ts';
import { createTestPki, type TestPki } from '../../support/test-pki.ts';

const QUEUE_LIMIT = 64 * 1024;
/** Requests this large fill the kernel's socket buffers in a few dozen frames. */
const REQUEST_PAYLOAD = new Uint8Array(512 * 1024).fill(0x42);
/** A cursor of 256 bytes: a thousand subscribes make ~300 KB, several times the control headroom. */
const RESUME = new Uint8Array(256).fill(0x7a);
/** Subscribes in the spam: ~300 KB of frames, several times what the control headroom allows. */
const SPAM = 1_000;
const FIRST_SPAM_REF = 10_000;
/** A stalled peer's backlog (socket buffers of tens of MiB) takes a while to drain over TLS. */
const DRAIN_TIMEOUT_MS = 20_000;

/** Finding 6 of the security review: an IT agent could get an OT agent cut as a slow consumer. */
describe('relay/server peer busy', () => {
  let pki: TestPki;
  let t: TestRelay;

  before(async () => {
    pki = await createTestPki();
    t = await startTestRelay(pki, {
      limits: {
        maxQueuedBytesPerConsumer: QUEUE_LIMIT,
        maxSubscriptionsPerAgent: 4 * SPAM,
        // Volume limits are another test's subject: the spammer here stays within its grants only.
        bytesPerSecond: 1024 * 1024 * 1024,
        messagesPerSecond: 1_000_000,
      },
      policy: [
        { role: 'ot' },
        { agent: 'spammer', subscribe: ['line-9/#'], command: ['line-9/#'] },
        { agent: 'watcher', subscribe: ['line-9/#', 'line-8/#'] },
      ],
    });
  });
  after(() => t.stop());

  /** Opens a session from `it` to the raw OT agent, which accepts by hand. */
  async function openWith(it: RecordingAgent, ot: RawAgent, otName: string): Promise<number> {
    const opening = it.client.openSession(otName, `${otName}/#`);
    const offer = await ot.next('sessionOpen', (frame) => frame.peer === it.client.welcome.name);
    ot.send({ type: 'sessionAccept', session: offer.session });
    return (await opening).session;
  }

  /**
   * Resolves once the relay has handled everything sent before through `send`, and the answer has
   * reached `recorder`: frames are handled in order, so the pong comes after every earlier answer.
   */
  let nonce = 0;
  async function roundTrip(send: (frame: ToRelayFrame) => void, recorder: FrameRecorder): Promise<void> {
    const sent = ++nonce;
    send({ type: 'ping', nonce: sent });
    await recorder.next('pong', (frame) => frame.nonce === sent, DRAIN_TIMEOUT_MS);
  }

  const isBusy = (frame: ToAgentFrame): boolean =>
    (frame.type === 'error' && frame.code === 'RELAY_ERR_PEER_BUSY') ||
    (frame.type === 'response' && frame.error?.code === 'RELAY_ERR_PEER_BUSY');

  it('relay - subscribes spammed at a stalled OT agent get PEER_BUSY; the OT agent is not cut and another session with it survives', async () => {
    const credentials = await pki.issueAgent('ot', 'line-9');
    const ot = await RawAgent.open({ url: t.url, caPem: pki.ca.certPem, ...credentials });
    try {
      const watcher = await t.connect('it', 'watcher');
      // Raw: it sends frames the agent link would not (requests it does not wait for) and sees
      // every answer, acks and errors included.
      const spammer = await t.connectRaw('it', 'spammer');
      const watched = await openWith(watcher, ot, 'line-9');
      await watcher.client.subscribe(watched, 'line-9/#');
      const [{ session }] = await Promise.all([
        spammer.openSession('line-9', 'line-9/#'),
        ot.acceptOffer('spammer'),
      ]);
      const spam = (frame: ToRelayFrame) => spammer.send(frame);

      ot.pauseReading();
      // Requests, each correctly checked for room, fill everything between the relay and the OT agent.
      let id = 0;
      while (!spammer.frames.some(isBusy)) {
        assert.ok(id < 200, 'the stalled OT agent never ran out of room');
        for (let batch = 0; batch < 4; batch++) {
          spam({
            type: 'request',
            session,
            id: ++id,
            topic: 'line-9/cmd',
            timeoutMs: 60_000,
            payload: REQUEST_PAYLOAD,
          });
        }
        await roundTrip(spam, spammer);
      }
      for (let n = 0; n < SPAM; n++) {
        spam({
          type: 'subscribe',
          ref: FIRST_SPAM_REF + n,
          session,
          filter: `line-9/spam/${n}`,
          resume: RESUME,
        });
      }
      await roundTrip(spam, spammer);
      assert.equal(
        t.audit.entries.find((entry) => entry.event === 'agent.disconnected' && entry['agent'] === 'line-9'),
        undefined,
        'the OT agent was cut',
      );
      const answers = spammer.frames.filter(
        (frame) =>
          (frame.type === 'ack' || frame.type === 'error') &&
          frame.ref !== undefined &&
          frame.ref >= FIRST_SPAM_REF,
      );
      assert.equal(answers.length, SPAM, 'every subscribe is answered');
      const refused = answers.filter(
        (frame) => frame.type === 'error' && frame.code === 'RELAY_ERR_PEER_BUSY',
      );
      assert.ok(
        refused.length > SPAM / 2,
        `only ${refused.length} of ${SPAM} subscribes refused as PEER_BUSY`,
      );

      // The OT agent reads again: it was never cut, and it got exactly the subscribes that were acked.
      ot.resumeReading();
      await roundTrip((frame) => ot.send(frame), ot);
      assert.equal(ot.closed, undefined, 'the OT agent was cut');
      const forwarded = ot.frames.flatMap((frame) =>
        frame.type === 'subscribe' && frame.filter.startsWith('line-9/spam/') ? [frame.filter] : [],
      );
      const acked = answers.flatMap((frame) =>
        frame.type === 'ack' ? [`line-9/spam/${frame.ref - FIRST_SPAM_REF}`] : [],
      );
      assert.deepEqual(forwarded, acked, 'forwarded subscribes differ from acknowledged ones');

      // The other IT agent's session with it survived, and still carries data.
      ot.send({ type: 'publish', topic: 'line-9/temp', seq: 1, count: 1, points: Uint8Array.of(1) });
      assert.equal((await watcher.next('deliver')).session, watched);
      assert.equal(
        watcher.frames.find((frame) => frame.type === 'sessionClose'),
        undefined,
      );
    } finally {
      ot.terminate();
    }
  });

  it('relay - a duplicate subscribe is acknowledged but not forwarded again', async () => {
    const credentials = await pki.issueAgent('ot', 'line-8');
    const ot = await RawAgent.open({ url: t.url, caPem: pki.ca.certPem, ...credentials });
    try {
      const watcher = await t.connect('it', 'watcher');
      const session = await openWith(watcher, ot, 'line-8');
      await watcher.client.subscribe(session, 'line-8/#');
      await watcher.client.subscribe(session, 'line-8/#', RESUME);
      await watcher.client.subscribe(session, 'line-8/marker');
      await ot.next('subscribe', (frame) => frame.filter === 'line-8/marker');
      assert.deepEqual(
        ot.frames.flatMap((frame) => (frame.type === 'subscribe' ? [frame.filter] : [])),
        ['line-8/#', 'line-8/marker'],
      );
    } finally {
      ot.terminate();
    }
  });
});

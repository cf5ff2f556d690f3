/**
 * The agent's link against a scripted relay (real mTLS on port 0, a throwaway CA), so a test
 * chooses exactly which frames arrive and when: several in one tick, each session event, answers
 * to calls, a close, or a relay that stops reading.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RelayLink, type LinkEvents } from '../../../agents/link/relay-link.ts';
import { DmzError } from '../../../relay/protocol/errors.ts';
import type {
  ToAgentFrame,
  ToAgentFrameOf,
  ToRelayFrame,
  ToRelayFrameOf,
} from '../../../relay/protocol/frames.ts';
import {
  startScriptedRelay,
  welcomeFrame,
  type ScriptedPeer,
  type ScriptedRelay,
} from '../../support/scripted-relay.ts';
import { createTestPki, type TestPki } from '../../support/test-pki.ts';
import { expectNever, waitFor } from '../../support/wait.ts';

const WELCOME = welcomeFrame('press-7');
const OFFER: ToAgentFrameOf<'sessionOpen'> = {
  type: 'sessionOpen',
  session: 3,
  peer: 'historian',
  filter: 'press-7/#',
  leaseMs: 30_000,
};
const deliver = (seq: number): ToAgentFrame => ({
  type: 'deliver',
  session: 3,
  topic: 'press-7/speed',
  seq,
  count: 1,
  points: new Uint8Array([1]),
});

/** Frames with their byte fields as plain arrays: decoded bytes are Buffers, sent ones Uint8Arrays. */
function plain(value: unknown): unknown {
  if (value instanceof Uint8Array) return [...value];
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.entries(value).map(([key, field]) => [key, plain(field)]));
}

let pki: TestPki;
before(async () => {
  pki = await createTestPki();
});

async function connect(relay: ScriptedRelay, events: LinkEvents = {}): Promise<RelayLink> {
  const credentials = await pki.issueAgent('ot', 'press-7');
  return RelayLink.connect({ url: relay.url, caPem: pki.ca.certPem, ...credentials }, events);
}

/** The error a promise rejected with (fails the test if it resolved). */
async function rejection(promise: Promise<unknown>): Promise<DmzError> {
  const error = await promise.then(
    () => assert.fail('expected a rejection'),
    (caught: unknown) => caught,
  );
  assert.ok(error instanceof DmzError, `not a DmzError: ${String(error)}`);
  return error;
}

describe('agents/link/relay-link - frames in the same tick as the welcome', () => {
  let relay: ScriptedRelay;
  before(async () => {
    relay = await startScriptedRelay(pki, (peer) => peer.send(WELCOME, { type: 'ping', nonce: 7 }, OFFER));
  });
  after(() => relay.close());

  it('answers a ping and a session offer sent together with the welcome', async () => {
    const link = await connect(relay);
    const peer = await relay.peer();
    await waitFor(
      () => peer.received.some((frame) => frame.type === 'pong' && frame.nonce === 7),
      'pong for the ping sent with the welcome',
    );
    await waitFor(
      () => peer.received.some((frame) => frame.type === 'sessionAccept' && frame.session === OFFER.session),
      'sessionAccept for the offer sent with the welcome',
    );
    assert.equal(link.closed, false);
    assert.deepEqual(link.welcome, WELCOME);
    await link.close();
  });
});

describe('agents/link/relay-link - typed session events', () => {
  let relay: ScriptedRelay;
  before(async () => {
    relay = await startScriptedRelay(pki, (peer) => peer.send(WELCOME));
  });
  after(() => relay.close());

  const EVENT_FRAMES: readonly ToAgentFrame[] = [
    OFFER,
    { type: 'subscribe', session: 3, filter: 'press-7/temps/#', resume: Uint8Array.of(9, 8, 7) },
    { type: 'unsubscribe', session: 3, filter: 'press-7/temps/#' },
    deliver(41),
    { type: 'dropped', session: 3, points: 12 },
    { type: 'sessionLease', session: 3, leaseMs: 30_000 },
    { type: 'sessionClose', session: 3, code: 'RELAY_ERR_SESSION_CLOSED', message: 'historian closed it' },
    {
      type: 'request',
      session: 3,
      id: 5,
      topic: 'press-7/setpoints/speed',
      timeoutMs: 1_000,
      payload: Uint8Array.of(4),
    },
  ];

  it('hands each session event to its own handler, with the frame as it came', async () => {
    const seen: [string, unknown][] = [];
    const record =
      (name: string) =>
      (frame: unknown): void => {
        seen.push([name, plain(frame)]);
      };
    const link = await connect(relay, {
      sessionOffered: (offer) => {
        record('sessionOffered')(offer);
        return true;
      },
      subscribed: record('subscribed'),
      unsubscribed: record('unsubscribed'),
      delivery: record('delivery'),
      dropped: record('dropped'),
      lease: record('lease'),
      sessionClosed: record('sessionClosed'),
      request: (request) => {
        record('request')(request);
        return Uint8Array.of(42);
      },
    });
    const peer = await relay.peer();
    peer.send(...EVENT_FRAMES);
    await waitFor(() => seen.length === EVENT_FRAMES.length && seen, 'every event');
    assert.deepEqual(
      seen,
      [
        'sessionOffered',
        'subscribed',
        'unsubscribed',
        'delivery',
        'dropped',
        'lease',
        'sessionClosed',
        'request',
      ].map((name, index) => [name, plain(EVENT_FRAMES[index])]),
    );
    const response = await waitFor(
      () => peer.received.find((frame) => frame.type === 'response'),
      'the response to the request',
    );
    assert.deepEqual(plain(response), { type: 'response', session: 3, id: 5, payload: [42] });
    assert.ok(
      peer.received.some((frame) => frame.type === 'sessionAccept' && frame.session === OFFER.session),
    );
    await link.close();
  });

  it('refuses an offer its sessionOffered declines, with a sessionClose for that session', async () => {
    const link = await connect(relay, { sessionOffered: () => false });
    const peer = await relay.peer();
    peer.send(OFFER, { type: 'ping', nonce: 11 });
    await waitFor(() => peer.received.some((frame) => frame.type === 'pong' && frame.nonce === 11), 'pong');
    assert.deepEqual(
      peer.received.filter((frame) => frame.type === 'sessionClose' || frame.type === 'sessionAccept'),
      [{ type: 'sessionClose', session: OFFER.session }],
    );
    await link.close();
  });

  it('answers a request it has no handler for with RELAY_ERR_FORBIDDEN, and a throwing handler with its code', async () => {
    const bare = await connect(relay);
    const bareRelay = await relay.peer();
    bareRelay.send({ ...(EVENT_FRAMES[7] as ToAgentFrameOf<'request'>), id: 6 });
    const refused = await waitFor(
      () => bareRelay.received.find((frame) => frame.type === 'response' && frame.id === 6),
      'the refusal',
    );
    assert.deepEqual(refused, {
      type: 'response',
      session: 3,
      id: 6,
      error: { code: 'RELAY_ERR_FORBIDDEN', message: 'this agent answers no requests' },
    });
    await bare.close();

    const strict = await connect(relay, {
      request: () => {
        throw new DmzError('RELAY_ERR_FORBIDDEN', 'speed must be 0..120');
      },
    });
    const strictRelay = await relay.peer();
    strictRelay.send({ ...(EVENT_FRAMES[7] as ToAgentFrameOf<'request'>), id: 7 });
    const answered = await waitFor(
      () => strictRelay.received.find((frame) => frame.type === 'response' && frame.id === 7),
      'the answer',
    );
    assert.deepEqual(answered.type === 'response' && answered.error, {
      code: 'RELAY_ERR_FORBIDDEN',
      message: 'speed must be 0..120',
    });
    await strict.close();
  });
});

describe('agents/link/relay-link - throwing user handlers do not crash the agent', () => {
  let relay: ScriptedRelay;
  before(async () => {
    relay = await startScriptedRelay(pki, (peer) => peer.send(WELCOME));
  });
  after(() => relay.close());

  it('reports a throwing delivery handler and keeps delivering', async () => {
    const seen: number[] = [];
    const reported: unknown[] = [];
    const failure = new Error('handler bug');
    const link = await connect(relay, {
      delivery: (delivery) => {
        seen.push(delivery.seq);
        if (delivery.seq === 1) throw failure;
      },
      handlerError: (error) => reported.push(error),
    });
    const peer = await relay.peer();
    peer.send(deliver(1));
    peer.send(deliver(2));
    await waitFor(() => seen.includes(2), 'the second deliver');
    assert.deepEqual(seen, [1, 2]);
    assert.deepEqual(reported, [failure]);
    assert.equal(link.closed, false);
    await link.close();
  });

  it('refuses a session whose sessionOffered throws', async () => {
    const reported: unknown[] = [];
    const link = await connect(relay, {
      sessionOffered: () => {
        throw new Error('handler bug');
      },
      handlerError: (error) => reported.push(error),
    });
    const peer = await relay.peer();
    peer.received.length = 0;
    peer.send(OFFER, { type: 'ping', nonce: 9 });
    await waitFor(
      () => peer.received.some((frame) => frame.type === 'pong' && frame.nonce === 9),
      'pong after the offer',
    );
    assert.deepEqual(
      peer.received.filter((frame) => frame.type === 'sessionClose' || frame.type === 'sessionAccept'),
      [{ type: 'sessionClose', session: OFFER.session }],
    );
    assert.equal(reported.length, 1);
    await link.close();
  });

  it('marks the link closed even when closed throws', async () => {
    const reported: unknown[] = [];
    const link = await connect(relay, {
      closed: () => {
        throw new Error('handler bug');
      },
      handlerError: (error) => reported.push(error),
    });
    await link.close();
    assert.equal(link.closed, true);
    assert.equal(reported.length, 1);
  });
});

describe('agents/link/relay-link - calls', () => {
  let relay: ScriptedRelay;
  before(async () => {
    relay = await startScriptedRelay(pki, (peer) => peer.send(WELCOME));
  });
  after(() => relay.close());

  /** The last frame of `type` the agent sent that matches `predicate` (waits for it). */
  const sent = <T extends ToRelayFrame['type']>(
    peer: ScriptedPeer,
    type: T,
    predicate: (frame: ToRelayFrameOf<T>) => boolean = () => true,
  ): Promise<ToRelayFrameOf<T>> =>
    waitFor(
      () =>
        peer.received.findLast(
          (frame): frame is ToRelayFrameOf<T> => frame.type === type && predicate(frame as ToRelayFrameOf<T>),
        ),
      `a ${type} from the agent`,
    );

  it('settles each call by its ref or id: resolved by its answer, rejected with the relay code', async () => {
    const link = await connect(relay);
    const peer = await relay.peer();

    const opening = link.openSession('press-9', 'press-9/#');
    const open = await sent(peer, 'sessionOpen');
    const accept = {
      type: 'sessionAccept',
      ref: open.ref,
      session: 4,
      peer: 'press-9',
      filter: 'press-9/#',
      leaseMs: 9_000,
    } as const;
    peer.send(accept);
    assert.deepEqual(await opening, accept);

    const subscribing = link.subscribe(4, 'press-9/#');
    const subscribe = await sent(peer, 'subscribe');
    peer.send({ type: 'error', ref: subscribe.ref, code: 'RELAY_ERR_FORBIDDEN', message: 'not yours' });
    const refused = await rejection(subscribing);
    assert.deepEqual([refused.code, refused.message], ['RELAY_ERR_FORBIDDEN', 'not yours']);

    const asking = link.request(4, 'press-9/setpoints/speed', Uint8Array.of(1), 1_000);
    const request = await sent(peer, 'request');
    peer.send({ type: 'response', session: 4, id: request.id, payload: Uint8Array.of(2, 3) });
    assert.deepEqual([...(await asking)], [2, 3]);

    const askingAgain = link.request(4, 'press-9/setpoints/speed', Uint8Array.of(1), 1_000);
    const again = await sent(peer, 'request', (frame) => frame.id !== request.id);
    peer.send({
      type: 'response',
      session: 4,
      id: again.id,
      error: { code: 'SOMETHING_NEW', message: 'odd' },
    });
    assert.equal(
      (await rejection(askingAgain)).code,
      'RELAY_ERR_INTERNAL',
      'a code this agent does not know',
    );
    await link.close();
  });

  it('fails pending calls with the close reason when it is a catalog code; later calls with AGENT_ERR_LINK_CLOSED', async () => {
    const closes: [number, string][] = [];
    const link = await connect(relay, { closed: (code, reason) => closes.push([code, reason]) });
    const peer = await relay.peer();
    const subscribing = link.subscribe(4, 'press-9/#');
    const asking = link.request(4, 'press-9/setpoints/speed', Uint8Array.of(1), 1_000);
    await sent(peer, 'request');
    peer.close(1008, 'RELAY_ERR_REVOKED');
    assert.equal((await rejection(subscribing)).code, 'RELAY_ERR_REVOKED');
    assert.equal((await rejection(asking)).code, 'RELAY_ERR_REVOKED');
    assert.deepEqual(closes, [[1008, 'RELAY_ERR_REVOKED']]);
    assert.equal(link.closed, true);
    assert.equal((await rejection(link.openSession('press-9', 'press-9/#'))).code, 'AGENT_ERR_LINK_CLOSED');
    assert.equal(
      (await rejection(link.request(4, 'press-9/x', Uint8Array.of(1), 1_000))).code,
      'AGENT_ERR_LINK_CLOSED',
    );
    assert.throws(() => link.publish('press-7/speed', 1, [Uint8Array.of(1)]), {
      code: 'AGENT_ERR_LINK_CLOSED',
    });
    await link.close(); // closing a closed link is a no-op
  });

  it('fails pending calls with AGENT_ERR_LINK_CLOSED when the close reason is no code', async () => {
    const link = await connect(relay);
    const peer = await relay.peer();
    const subscribing = link.subscribe(4, 'press-9/#');
    await sent(peer, 'subscribe');
    peer.terminate();
    assert.equal((await rejection(subscribing)).code, 'AGENT_ERR_LINK_CLOSED');
  });
});

describe('agents/link/relay-link - whenWritable', () => {
  let relay: ScriptedRelay;
  before(async () => {
    relay = await startScriptedRelay(pki, (peer) => peer.send(WELCOME));
  });
  after(() => relay.close());

  /**
   * Publishes `bytes`-sized batches to a relay that does not read, one per turn of the event loop
   * (so the socket writes what it can and the kernel's buffers fill), until `until()` holds after
   * such a turn: then the backlog is one the network does not take.
   */
  async function publishUntil(link: RelayLink, bytes: number, until: () => boolean): Promise<void> {
    const batch = new Uint8Array(bytes).fill(7);
    for (let seq = 0; !until(); seq++) {
      assert.ok(seq < 100_000, 'the relay never stopped taking bytes');
      link.publishBatch('press-7/bulk', seq, batch, 1);
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  it('resolves at once when the backlog is already small enough', async () => {
    const link = await connect(relay);
    assert.equal(link.bufferedBytes, 0);
    await link.whenWritable(0);
    await link.close();
  });

  const BACKLOGS = [
    // Past the socket's high-water mark: the wait ends on its 'drain'.
    {
      name: 'a large backlog (the socket drains)',
      batchBytes: 32 * 1024,
      threshold: 256 * 1024,
      minimum: 256 * 1024 + 1,
    },
    // A few KiB: below the high-water mark the socket emits no 'drain'; the wait must end anyway.
    { name: 'a backlog below the socket high-water mark', batchBytes: 2 * 1024, threshold: 0, minimum: 1 },
  ];
  for (const row of BACKLOGS) {
    it(`waits out ${row.name} while the relay does not read, and resolves once it reads again`, async () => {
      const link = await connect(relay);
      const peer = await relay.peer();
      peer.pauseReading();
      await publishUntil(link, row.batchBytes, () => link.bufferedBytes >= row.minimum);
      let writable = false;
      const waiting = link.whenWritable(row.threshold).then(() => {
        writable = true;
      });
      await expectNever(() => writable, 'whenWritable resolving while the relay reads nothing', 300);
      peer.resumeReading();
      await waitFor(() => writable, 'whenWritable after the relay reads again', 10_000);
      await waiting;
      assert.ok(link.bufferedBytes <= row.threshold, `${link.bufferedBytes} bytes still queued`);
      await link.close();
    });
  }

  it('resolves when the link closes while it waits', async () => {
    const link = await connect(relay);
    const peer = await relay.peer();
    peer.pauseReading();
    await publishUntil(link, 32 * 1024, () => link.bufferedBytes > 64 * 1024);
    let writable = false;
    void link.whenWritable(0).then(() => {
      writable = true;
    });
    peer.terminate();
    await waitFor(() => writable, 'whenWritable once the link closed');
    assert.equal(link.closed, true);
    await link.whenWritable(0);
  });
});

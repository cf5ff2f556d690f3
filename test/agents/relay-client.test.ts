/**
 * The agent client against a scripted fake relay (real mTLS on port 0, a throwaway CA), so a test
 * chooses exactly which frames arrive and when: several in one tick, or ones a user handler chokes on.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { RelayClient, type RelayClientHandlers } from '../../agents/relay-client.ts';
import { decodeReading, Press } from '../../deploy/demo/plant.ts';
import { decodeFrame, encodeFrame } from '../../relay/protocol/codec.ts';
import type { ToAgentFrame, ToAgentFrameOf, ToRelayFrame } from '../../relay/protocol/frames.ts';
import { SUBPROTOCOL } from '../../relay/protocol/limits.ts';
import { createTestPki, type TestPki } from '../support/test-pki.ts';
import { expectNever, waitFor } from '../support/wait.ts';

const WELCOME: ToAgentFrameOf<'welcome'> = {
  type: 'welcome',
  role: 'ot',
  name: 'press-7',
  leaseMs: 30_000,
  pingIntervalMs: 10_000,
  maxFrameBytes: 64 * 1024,
};
const OFFER: ToAgentFrameOf<'sessionOpen'> = {
  type: 'sessionOpen',
  session: 3,
  peer: 'historian',
  filter: 'press-7/#',
  leaseMs: 30_000,
};

/** The relay's side of one agent connection: what the agent sent, and a way to answer. */
interface FakePeer {
  readonly received: ToRelayFrame[];
  send(...frames: ToAgentFrame[]): void;
}

interface FakeRelay {
  readonly url: string;
  /** The connected agent, once its hello has arrived. */
  peer(): Promise<FakePeer>;
  close(): Promise<void>;
}

/**
 * Answers an agent's hello by calling `onHello`, which sends the welcome and whatever else the test
 * wants in one go: each frame is one WebSocket message, and one `send` puts them in one TCP write.
 */
async function startFakeRelay(pki: TestPki, onHello: (peer: FakePeer) => void): Promise<FakeRelay> {
  const server: Server = createServer({
    cert: pki.relay.certPem,
    key: pki.relay.keyPem,
    ca: pki.ca.certPem,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.3',
  });
  const sockets = new Set<WebSocket>();
  let connected: FakePeer | undefined;
  const wss = new WebSocketServer({
    server,
    handleProtocols: (offered) => (offered.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
  });
  wss.on('connection', (socket, request) => {
    sockets.add(socket);
    const peer: FakePeer = {
      received: [],
      send: (...frames) => {
        // Corked, the messages leave in one TLS record, so the agent's ws parses them from one chunk.
        request.socket.cork();
        for (const frame of frames) socket.send(encodeFrame(frame));
        request.socket.uncork();
      },
    };
    socket.on('message', (data: Buffer) => {
      const frame = decodeFrame(data, 'toRelay');
      peer.received.push(frame);
      if (frame.type === 'hello') {
        connected = peer;
        onHello(peer);
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `wss://127.0.0.1:${port}/v1/agent`,
    peer: () => waitFor(() => connected, 'agent hello'),
    close: async () => {
      for (const socket of sockets) socket.terminate();
      await new Promise((done) => wss.close(done));
      await new Promise((done) => server.close(done));
    },
  };
}

let pki: TestPki;
before(async () => {
  pki = await createTestPki();
});

async function connect(relay: FakeRelay, handlers: RelayClientHandlers = {}): Promise<RelayClient> {
  const credentials = await pki.issueAgent('ot', 'press-7');
  return RelayClient.connect({ url: relay.url, caPem: pki.ca.certPem, ...credentials }, handlers);
}

describe('agents/relay-client - frames in the same tick as the welcome', () => {
  let relay: FakeRelay;
  before(async () => {
    relay = await startFakeRelay(pki, (peer) => peer.send(WELCOME, { type: 'ping', nonce: 7 }, OFFER));
  });
  after(() => relay.close());

  it('answers a ping and a session offer sent together with the welcome', async () => {
    const client = await connect(relay);
    const peer = await relay.peer();
    await waitFor(
      () => peer.received.some((frame) => frame.type === 'pong' && frame.nonce === 7),
      'pong for the ping sent with the welcome',
    );
    await waitFor(
      () => peer.received.some((frame) => frame.type === 'sessionAccept' && frame.session === OFFER.session),
      'sessionAccept for the offer sent with the welcome',
    );
    assert.equal(client.closed, false);
    await client.close();
  });
});

describe('agents/relay-client - throwing user handlers do not crash the agent', () => {
  let relay: FakeRelay;
  before(async () => {
    relay = await startFakeRelay(pki, (peer) => peer.send(WELCOME));
  });
  after(() => relay.close());

  it('reports a throwing onFrame and keeps delivering', async () => {
    const seen: number[] = [];
    const reported: unknown[] = [];
    const failure = new Error('handler bug');
    const client = await connect(relay, {
      onFrame: (frame) => {
        if (frame.type !== 'deliver') return;
        seen.push(frame.seq);
        if (frame.seq === 1) throw failure;
      },
      onHandlerError: (error) => reported.push(error),
    });
    const peer = await relay.peer();
    const deliver = (seq: number): ToAgentFrame => ({
      type: 'deliver',
      session: 3,
      topic: 'press-7/speed',
      seq,
      count: 1,
      points: new Uint8Array([1]),
    });
    peer.send(deliver(1));
    peer.send(deliver(2));
    await waitFor(() => seen.includes(2), 'the second deliver');
    assert.deepEqual(seen, [1, 2]);
    assert.deepEqual(reported, [failure]);
    assert.equal(client.closed, false);
    await client.close();
  });

  it('refuses a session whose onSessionOffer throws', async () => {
    const reported: unknown[] = [];
    const client = await connect(relay, {
      onSessionOffer: () => {
        throw new Error('handler bug');
      },
      onHandlerError: (error) => reported.push(error),
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
    await client.close();
  });

  it('marks the client closed even when onClose throws', async () => {
    const reported: unknown[] = [];
    const client = await connect(relay, {
      onClose: () => {
        throw new Error('handler bug');
      },
      onHandlerError: (error) => reported.push(error),
    });
    await client.close();
    assert.equal(client.closed, true);
    assert.equal(reported.length, 1);
  });
});

// The demo plant's client-side manners; here because they need this file's fake relay.
describe('deploy/demo/plant - the press and historian survive a closed or odd connection', () => {
  let relay: FakeRelay;
  before(async () => {
    relay = await startFakeRelay(pki, (peer) => peer.send(WELCOME));
  });
  after(() => relay.close());

  it('stops publishing once its connection is closed', async () => {
    const PERIOD_MS = 10;
    const client = await connect(relay);
    let publishesAfterClose = 0;
    const publish = client.publish.bind(client);
    client.publish = (...args) => {
      if (client.closed) publishesAfterClose++;
      publish(...args);
    };
    const press = new Press();
    press.start(client, 'press-7', PERIOD_MS);
    try {
      const peer = await relay.peer();
      await waitFor(() => peer.received.some((frame) => frame.type === 'publish'), 'a publish');
      await client.close();
      await expectNever(() => publishesAfterClose > 0, 'a publish on the closed connection', 10 * PERIOD_MS);
    } finally {
      press.stop();
    }
  });

  it('skips a point that is not a reading instead of throwing', () => {
    const encode = (text: string) => new TextEncoder().encode(text);
    assert.deepEqual(decodeReading(encode('{"value":61.5,"ts":1700000000000}')), {
      value: 61.5,
      ts: 1_700_000_000_000,
    });
    for (const text of ['', '{"value":', 'null', '42', '{"value":"fast","ts":1}', '{"ts":1}']) {
      assert.equal(decodeReading(encode(text)), undefined, JSON.stringify(text));
    }
  });
});

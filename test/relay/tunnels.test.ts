/**
 * The relay's stream handling in memory (broker + tunnels.ts over MemoryLinks): frames decoded,
 * checked in order (session, stream, credit, policy, limits), forwarded or refused. A refused
 * frame is a clear error naming the stream and changes nothing: no forward, no credit spent.
 */
import assert from 'node:assert/strict';
import { beforeEach, describe, it as test } from 'node:test';
import { pino } from 'pino';
import { encodeFrame, streamDataFrame } from '../../relay/protocol/codec.ts';
import { FRAME_KIND, type ToRelayFrame } from '../../relay/protocol/frames.ts';
import {
  MAX_STREAM_CHUNK_BYTES,
  MAX_STREAM_WINDOW_BYTES,
  MIN_STREAM_FRAME_CREDIT,
} from '../../relay/protocol/streams.ts';
import type { AgentConnection } from '../../relay/server/agent-connection.ts';
import { Broker } from '../../relay/server/broker.ts';
import { validateRelayConfig } from '../../relay/server/config.ts';
import { RelayMetrics } from '../../relay/server/metrics.ts';
import { Policy } from '../../relay/server/policy.ts';
import { MemoryLink } from '../support/memory-link.ts';
import { rawFrame } from '../support/raw-frame.ts';

const config = validateRelayConfig(
  {
    trustDomain: 'plant.example',
    state: 's',
    limits: { maxStreamsPerSession: 2, maxStreamsPerAgent: 3 },
    policy: [{ role: 'ot' }, { agent: 'scada', tunnel: ['plc-7/modbus', 'plc-7/opcua'] }],
  },
  '/',
);

describe('relay tunnels (in memory)', () => {
  let broker: Broker;
  let audit: { event: string; [key: string]: unknown }[];
  let ot: AgentConnection;
  let otLink: MemoryLink;
  let it: AgentConnection;
  let itLink: MemoryLink;
  let session: number;
  const send = (connection: AgentConnection, frame: ToRelayFrame) =>
    broker.receive(connection, encodeFrame(frame));
  const errors = (link: MemoryLink) => link.ofType('error');

  function join(role: 'ot' | 'it', name: string): [AgentConnection, MemoryLink] {
    const link = new MemoryLink(role, name);
    const connection = broker.attach(link);
    assert.ok(connection);
    send(connection, { type: 'hello', software: 'test' });
    return [connection, link];
  }

  /** Opens stream `stream` to `service` and has the OT side accept it with `credit`. */
  function openStream(stream: number, service = 'modbus', credit = 1000): void {
    send(it, { type: 'streamOpen', session, stream, service, window: 1000 });
    send(ot, { type: 'streamWindow', session, stream, credit });
  }

  beforeEach(() => {
    audit = [];
    broker = new Broker({
      config,
      policy: new Policy(config.policy),
      audit: { record: (event, fields) => audit.push({ event, ...fields }) },
      metrics: new RelayMetrics(),
      log: pino({ level: 'silent' }),
    });
    [ot, otLink] = join('ot', 'plc-7');
    [it, itLink] = join('it', 'scada');
    send(it, { type: 'sessionOpen', ref: 1, peer: 'plc-7', filter: 'plc-7/+' });
    const offer = otLink.ofType('sessionOpen')[0];
    assert.ok(offer, 'a tunnel grant alone lets the IT agent open a session');
    session = offer.session;
    send(ot, { type: 'sessionAccept', session });
  });

  test('hands the open to the OT side, the accept back, and data both ways within credit', () => {
    openStream(5);
    assert.deepEqual(otLink.ofType('streamOpen'), [
      { type: 'streamOpen', session, stream: 5, service: 'modbus', window: 1000 },
    ]);
    assert.deepEqual(itLink.ofType('streamWindow'), [
      { type: 'streamWindow', session, stream: 5, credit: 1000 },
    ]);
    send(it, { type: 'streamData', session, stream: 5, data: new Uint8Array(600) });
    send(ot, { type: 'streamData', session, stream: 5, data: Uint8Array.of(1, 2, 3), end: true });
    assert.equal(otLink.ofType('streamData')[0]?.data.byteLength, 600);
    assert.deepEqual(itLink.ofType('streamData'), [
      { type: 'streamData', session, stream: 5, data: Uint8Array.of(1, 2, 3), end: true },
    ]);
    send(it, { type: 'streamData', session, stream: 5, data: new Uint8Array(0), end: true });
    assert.deepEqual(
      audit
        .filter((entry) => entry.event.startsWith('tunnel.'))
        .map((entry) => [entry.event, entry['reason']]),
      [
        ['tunnel.opened', undefined],
        ['tunnel.closed', 'end'],
      ],
    );
    const closed = audit.find((entry) => entry.event === 'tunnel.closed');
    assert.equal(closed?.['bytesToOt'], 600);
    assert.equal(closed?.['bytesToIt'], 3);
    assert.equal(broker.streamCount, 0);
  });

  const refusals: {
    name: string;
    frame: (stream: number) => ToRelayFrame;
    from: 'it' | 'ot';
    code: string;
  }[] = [
    {
      name: 'data beyond the credit granted',
      from: 'it',
      frame: (stream) => ({ type: 'streamData', session, stream, data: new Uint8Array(1001) }),
      code: 'RELAY_ERR_STREAM_CREDIT',
    },
    {
      name: 'a grant that takes the credit past the window',
      from: 'ot',
      frame: (stream) => ({ type: 'streamWindow', session, stream, credit: MAX_STREAM_WINDOW_BYTES }),
      code: 'RELAY_ERR_STREAM_CREDIT',
    },
    {
      name: 'data on an unknown stream',
      from: 'it',
      frame: () => ({ type: 'streamData', session, stream: 99, data: new Uint8Array(1) }),
      code: 'RELAY_ERR_NO_SUCH_STREAM',
    },
    {
      name: 'a grant on an unknown stream',
      from: 'ot',
      frame: () => ({ type: 'streamWindow', session, stream: 99, credit: 1 }),
      code: 'RELAY_ERR_NO_SUCH_STREAM',
    },
    {
      name: 'a close of an unknown stream',
      from: 'ot',
      frame: () => ({ type: 'streamClose', session, stream: 99, code: 'AGENT_ERR_TUNNEL_IDLE' }),
      code: 'RELAY_ERR_NO_SUCH_STREAM',
    },
    {
      name: 'a stream in an unknown session',
      from: 'it',
      frame: () => ({ type: 'streamOpen', session: session + 1, stream: 1, service: 'modbus', window: 1 }),
      code: 'RELAY_ERR_NO_SUCH_SESSION',
    },
    {
      name: 'a stream number already open',
      from: 'it',
      frame: (stream) => ({ type: 'streamOpen', session, stream, service: 'modbus', window: 1 }),
      code: 'RELAY_ERR_DUPLICATE_STREAM',
    },
    {
      name: 'a service no grant covers',
      from: 'it',
      frame: () => ({ type: 'streamOpen', session, stream: 7, service: 'ssh', window: 1 }),
      code: 'RELAY_ERR_FORBIDDEN',
    },
    {
      name: 'a stream opened by the OT side',
      from: 'ot',
      frame: () => ({ type: 'streamOpen', session, stream: 7, service: 'modbus', window: 1 }),
      code: 'RELAY_ERR_FORBIDDEN',
    },
    {
      name: 'an empty data frame without end',
      from: 'it',
      frame: (stream) => ({ type: 'streamData', session, stream, data: new Uint8Array(0) }),
      code: 'RELAY_ERR_INVALID_FRAME',
    },
  ];
  for (const refusal of refusals) {
    test(`refuses ${refusal.name} with ${refusal.code}, changing nothing`, () => {
      openStream(5);
      const [sender, senderLink, peerLink] =
        refusal.from === 'it' ? [it, itLink, otLink] : [ot, otLink, itLink];
      const forwarded = peerLink.frames.length;
      send(sender, refusal.frame(5));
      const error = errors(senderLink).at(-1);
      assert.equal(error?.code, refusal.code);
      assert.equal(peerLink.frames.length, forwarded, 'nothing forwarded');
      assert.equal(senderLink.closed, undefined, 'the connection stays');
      // The stream is as it was: its full credit still passes, and it ends normally.
      send(it, { type: 'streamData', session, stream: 5, data: new Uint8Array(1000) });
      assert.equal(otLink.ofType('streamData').at(-1)?.data.byteLength, 1000);
      assert.equal(broker.streamCount, 1);
    });
  }

  test('ignores a grant or a close still in flight for a stream that has ended, and refuses its data', () => {
    // Both ends sent their end, so the relay forgot the stream; the receiving end may still grant
    // for the bytes it was writing out (RFC 9113 section 5.1 ignores WINDOW_UPDATE there too). An
    // error back would overtake the end, still in the bulk lane, and abort a stream that finished.
    openStream(5);
    send(ot, { type: 'streamData', session, stream: 5, data: Uint8Array.of(1), end: true });
    send(it, { type: 'streamData', session, stream: 5, data: Uint8Array.of(2), end: true });
    assert.equal(broker.streamCount, 0);
    const forwarded = [otLink.frames.length, itLink.frames.length];
    send(it, { type: 'streamWindow', session, stream: 5, credit: 1000 });
    send(ot, { type: 'streamWindow', session, stream: 5, credit: 1000 });
    send(it, { type: 'streamClose', session, stream: 5, code: 'AGENT_ERR_TUNNEL_CLIENT_FAILED' });
    assert.deepEqual(errors(itLink), []);
    assert.deepEqual(errors(otLink), []);
    assert.deepEqual([otLink.frames.length, itLink.frames.length], forwarded, 'nothing forwarded');
    send(it, { type: 'streamData', session, stream: 5, data: Uint8Array.of(3) });
    assert.equal(errors(itLink).at(-1)?.code, 'RELAY_ERR_NO_SUCH_STREAM');
  });

  test('counts every data frame as at least MIN_STREAM_FRAME_CREDIT: tiny frames spend a grant sooner', () => {
    openStream(5, 'modbus', 3 * MIN_STREAM_FRAME_CREDIT);
    for (let frame = 0; frame < 4; frame++)
      send(it, { type: 'streamData', session, stream: 5, data: Uint8Array.of(frame) });
    assert.equal(otLink.ofType('streamData').length, 3, 'three 1-byte frames on three frames of credit');
    assert.equal(errors(itLink).at(-1)?.code, 'RELAY_ERR_STREAM_CREDIT');
    // The end-only frame spends nothing: it still passes.
    send(it, { type: 'streamData', session, stream: 5, data: new Uint8Array(0), end: true });
    assert.equal(otLink.ofType('streamData').at(-1)?.end, true);
  });

  test('names the stream in the error, so the agent knows which one was refused', () => {
    openStream(5);
    send(it, { type: 'streamData', session, stream: 5, data: new Uint8Array(2000) });
    assert.deepEqual(
      { session: errors(itLink).at(-1)?.session, stream: errors(itLink).at(-1)?.stream },
      { session, stream: 5 },
    );
  });

  const malformed: [string, Uint8Array][] = [
    ['a credit of 0', rawFrame(FRAME_KIND.streamWindow, { session: 1, stream: 1, credit: 0 })],
    ['a negative credit', rawFrame(FRAME_KIND.streamWindow, { session: 1, stream: 1, credit: -5 })],
    [
      'a credit above the window',
      rawFrame(FRAME_KIND.streamWindow, { session: 1, stream: 1, credit: MAX_STREAM_WINDOW_BYTES + 1 }),
    ],
    [
      'a window of 0',
      rawFrame(FRAME_KIND.streamOpen, { session: 1, stream: 1, service: 'modbus', window: 0 }),
    ],
    [
      'a service name with a slash',
      rawFrame(FRAME_KIND.streamOpen, { session: 1, stream: 1, service: 'a/b', window: 1 }),
    ],
    [
      'a service name of dots',
      rawFrame(FRAME_KIND.streamOpen, { session: 1, stream: 1, service: '..', window: 1 }),
    ],
    [
      'a stream id above u32',
      rawFrame(FRAME_KIND.streamData, { session: 1, stream: 2 ** 32, data: new Uint8Array(1) }),
    ],
    [
      'data larger than a chunk',
      rawFrame(FRAME_KIND.streamData, {
        session: 1,
        stream: 1,
        data: new Uint8Array(MAX_STREAM_CHUNK_BYTES + 1),
      }),
    ],
    ['data that is not bytes', rawFrame(FRAME_KIND.streamData, { session: 1, stream: 1, data: 'text' })],
    ['a close without a code', rawFrame(FRAME_KIND.streamClose, { session: 1, stream: 1 })],
    ['a fractional credit', rawFrame(FRAME_KIND.streamWindow, { session: 1, stream: 1, credit: 1.5 })],
    ['a credit of NaN', rawFrame(FRAME_KIND.streamWindow, { session: 1, stream: 1, credit: Number.NaN })],
    ['a credit given as text', rawFrame(FRAME_KIND.streamWindow, { session: 1, stream: 1, credit: '100' })],
    [
      'an infinite window',
      rawFrame(FRAME_KIND.streamOpen, { session: 1, stream: 1, service: 'modbus', window: Infinity }),
    ],
    [
      'a fractional stream id',
      rawFrame(FRAME_KIND.streamData, { session: 1, stream: 5.5, data: new Uint8Array(1) }),
    ],
    [
      'a negative stream id',
      rawFrame(FRAME_KIND.streamData, { session: 1, stream: -5, data: new Uint8Array(1) }),
    ],
    ['data without a stream', rawFrame(FRAME_KIND.streamData, { session: 1, data: new Uint8Array(1) })],
    [
      'a field no stream frame has',
      rawFrame(FRAME_KIND.streamData, {
        session: 1,
        stream: 5,
        data: new Uint8Array(1),
        target: '10.0.0.1:22',
      }),
    ],
    [
      'an end flag that is not a boolean',
      rawFrame(FRAME_KIND.streamData, { session: 1, stream: 5, data: new Uint8Array(1), end: 1 }),
    ],
  ];
  for (const [name, bytes] of malformed) {
    test(`refuses a malformed stream frame (${name}) with RELAY_ERR_INVALID_FRAME`, () => {
      openStream(5);
      const forwarded = otLink.frames.length;
      broker.receive(it, bytes);
      assert.equal(errors(itLink).at(-1)?.code, 'RELAY_ERR_INVALID_FRAME');
      assert.equal(otLink.frames.length, forwarded);
      assert.equal(broker.streamCount, 1);
    });
  }

  test('holds the limits per session and per agent, and audits each refusal', () => {
    openStream(1);
    openStream(2, 'opcua');
    send(it, { type: 'streamOpen', session, stream: 3, service: 'modbus', window: 1 });
    assert.equal(errors(itLink).at(-1)?.code, 'RELAY_ERR_TOO_MANY');
    assert.match(errors(itLink).at(-1)?.message ?? '', /2 streams per session/);
    send(it, { type: 'sessionOpen', ref: 2, peer: 'plc-7', filter: 'plc-7/+' });
    const second = otLink.ofType('sessionOpen')[1]?.session ?? 0;
    send(ot, { type: 'sessionAccept', session: second });
    send(it, { type: 'streamOpen', session: second, stream: 1, service: 'modbus', window: 1 });
    send(it, { type: 'streamOpen', session: second, stream: 2, service: 'modbus', window: 1 });
    assert.match(errors(itLink).at(-1)?.message ?? '', /3 streams open, the most per agent/);
    assert.deepEqual(
      audit.filter((entry) => entry.event === 'tunnel.refused').map((entry) => entry['reason']),
      ['RELAY_ERR_TOO_MANY', 'RELAY_ERR_TOO_MANY'],
    );
  });

  test("forwards an abort to the other side with its code, and a session's end takes its streams", () => {
    openStream(1);
    openStream(2, 'opcua');
    send(ot, { type: 'streamClose', session, stream: 1, code: 'AGENT_ERR_TUNNEL_IDLE' });
    assert.deepEqual(
      itLink.ofType('streamClose').map((frame) => [frame.stream, frame.code]),
      [[1, 'AGENT_ERR_TUNNEL_IDLE']],
    );
    send(it, { type: 'sessionClose', session });
    assert.equal(broker.streamCount, 0);
    assert.deepEqual(
      audit
        .filter((entry) => entry.event === 'tunnel.closed')
        .map((entry) => [entry['stream'], entry['reason']]),
      [
        [1, 'AGENT_ERR_TUNNEL_IDLE'],
        [2, 'RELAY_ERR_SESSION_CLOSED'],
      ],
    );
  });

  test('writes stream data as one message of two pieces: the head, then the bytes as they came', () => {
    const data = Uint8Array.of(9, 8, 7);
    const [head, body] = streamDataFrame({ session: 3, stream: 4, data, end: true });
    assert.equal(body, data);
    const whole = new Uint8Array([...head, ...body]);
    assert.deepEqual(whole, encodeFrame({ type: 'streamData', session: 3, stream: 4, end: true, data }));
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { encodeFrame } from '../../../relay/protocol/codec.ts';
import type { ToAgentFrame, ToRelayFrame } from '../../../relay/protocol/frames.ts';
import type { AgentConnection } from '../../../relay/server/agent-connection.ts';
import { Broker } from '../../../relay/server/broker.ts';
import { validateRelayConfig } from '../../../relay/server/config.ts';
import { RelayMetrics } from '../../../relay/server/metrics.ts';
import { Policy } from '../../../relay/server/policy.ts';
import { MemoryLink } from '../../support/memory-link.ts';

const QUEUE_LIMIT = 64 * 1024;
/** Less room than any forwarded frame needs (the smallest, an unsubscribe, is ~30 bytes). */
const NO_ROOM = QUEUE_LIMIT - 16;

const config = validateRelayConfig(
  {
    trustDomain: 'plant.example',
    state: 's',
    limits: { maxQueuedBytesPerConsumer: QUEUE_LIMIT },
    policy: [{ role: 'ot' }, { role: 'it', subscribe: ['#'], command: ['#'] }],
  },
  '/',
);

/** One OT agent and one IT agent with an open session, subscribed to `press-7/temps/#`. */
interface Pair {
  readonly broker: Broker;
  readonly ot: AgentConnection;
  readonly otLink: MemoryLink;
  readonly it: AgentConnection;
  readonly itLink: MemoryLink;
  readonly session: number;
  send(connection: AgentConnection, frame: ToRelayFrame): void;
  /** Publishes one point on press-7 and says whether the IT agent got it. */
  delivered(topic: string): boolean;
}

function pair(): Pair {
  const broker = new Broker({
    config,
    policy: new Policy(config.policy),
    audit: { record: () => undefined },
    metrics: new RelayMetrics(),
    log: pino({ level: 'silent' }),
  });
  const send = (connection: AgentConnection, frame: ToRelayFrame) =>
    broker.receive(connection, encodeFrame(frame));
  const join = (role: 'ot' | 'it', name: string): [AgentConnection, MemoryLink] => {
    const link = new MemoryLink(role, name);
    const connection = broker.attach(link);
    assert.ok(connection);
    send(connection, { type: 'hello', software: 'test' });
    return [connection, link];
  };
  const [ot, otLink] = join('ot', 'press-7');
  const [it, itLink] = join('it', 'historian');
  send(it, { type: 'sessionOpen', ref: 1, peer: 'press-7', filter: 'press-7/#' });
  const session = otLink.ofType('sessionOpen')[0]!.session;
  send(ot, { type: 'sessionAccept', session });
  send(it, { type: 'subscribe', ref: 2, session, filter: 'press-7/temps/#' });
  assert.equal(itLink.ofType('ack')[0]?.ref, 2);
  let seq = 0;
  const delivered = (topic: string): boolean => {
    const before = itLink.ofType('deliver').length;
    send(ot, { type: 'publish', topic, seq: ++seq, count: 1, points: Uint8Array.of(1) });
    return itLink.ofType('deliver').length > before;
  };
  return { broker, ot, otLink, it, itLink, session, send, delivered };
}

const busyError = (link: MemoryLink, ref: number): boolean =>
  link.ofType('error').some((frame) => frame.ref === ref && frame.code === 'RELAY_ERR_PEER_BUSY');
const count = (link: MemoryLink, type: ToAgentFrame['type']): number => link.ofType(type).length;

/** A frame the relay forwards on an agent's behalf, to a receiver with no room for it. */
const CASES: readonly {
  readonly name: string;
  readonly receiver: 'ot' | 'it';
  /** Anything the case needs before the receiver stalls; returns what `act` needs. */
  readonly prepare?: (p: Pair) => number;
  readonly act: (p: Pair, prepared: number) => void;
  /** The frame type that must not reach the receiver. */
  readonly forwarded: ToAgentFrame['type'];
  /** How the sender learns of the refusal. */
  readonly refused: (p: Pair) => boolean;
  /** Once the receiver drains: nothing changed, and the same frame now goes through. */
  readonly unchanged: (p: Pair, prepared: number) => void;
}[] = [
  {
    name: 'a session offer',
    receiver: 'ot',
    act: (p) => p.send(p.it, { type: 'sessionOpen', ref: 9, peer: 'press-7', filter: 'press-7/#' }),
    forwarded: 'sessionOpen',
    refused: (p) => busyError(p.itLink, 9),
    unchanged: (p) => {
      assert.equal(p.broker.sessionCount, 1);
      p.send(p.it, { type: 'sessionOpen', ref: 10, peer: 'press-7', filter: 'press-7/#' });
      assert.equal(count(p.otLink, 'sessionOpen'), 2);
      assert.equal(p.broker.sessionCount, 2);
    },
  },
  {
    name: 'a subscribe',
    receiver: 'ot',
    act: (p) => p.send(p.it, { type: 'subscribe', ref: 9, session: p.session, filter: 'press-7/flows/#' }),
    forwarded: 'subscribe',
    refused: (p) => busyError(p.itLink, 9) && !p.itLink.ofType('ack').some((frame) => frame.ref === 9),
    unchanged: (p) => {
      assert.equal(p.delivered('press-7/flows/f1'), false, 'the refused subscription was added');
      p.send(p.it, { type: 'subscribe', ref: 10, session: p.session, filter: 'press-7/flows/#' });
      assert.deepEqual(
        p.otLink.ofType('subscribe').map((frame) => frame.filter),
        ['press-7/temps/#', 'press-7/flows/#'],
      );
      assert.equal(p.delivered('press-7/flows/f1'), true);
    },
  },
  {
    name: 'an unsubscribe',
    receiver: 'ot',
    act: (p) => p.send(p.it, { type: 'unsubscribe', ref: 9, session: p.session, filter: 'press-7/temps/#' }),
    forwarded: 'unsubscribe',
    refused: (p) => busyError(p.itLink, 9) && !p.itLink.ofType('ack').some((frame) => frame.ref === 9),
    unchanged: (p) => {
      assert.equal(p.delivered('press-7/temps/t1'), true, 'the subscription was removed all the same');
      p.send(p.it, { type: 'unsubscribe', ref: 10, session: p.session, filter: 'press-7/temps/#' });
      assert.equal(count(p.otLink, 'unsubscribe'), 1);
      assert.equal(p.delivered('press-7/temps/t1'), false);
    },
  },
  {
    name: 'a request',
    receiver: 'ot',
    act: (p) =>
      p.send(p.it, {
        type: 'request',
        session: p.session,
        id: 9,
        topic: 'press-7/setpoints/a',
        timeoutMs: 1_000,
        payload: new Uint8Array(8),
      }),
    forwarded: 'request',
    refused: (p) =>
      p.itLink
        .ofType('response')
        .some((frame) => frame.id === 9 && frame.error?.code === 'RELAY_ERR_PEER_BUSY'),
    unchanged: (p) => {
      // Not recorded as pending: the same id is no duplicate.
      p.send(p.it, {
        type: 'request',
        session: p.session,
        id: 9,
        topic: 'press-7/setpoints/a',
        timeoutMs: 1_000,
        payload: new Uint8Array(8),
      });
      assert.equal(count(p.otLink, 'request'), 1);
      const relayId = p.otLink.ofType('request')[0]!.id;
      p.send(p.ot, { type: 'response', session: p.session, id: relayId, payload: Uint8Array.of(1) });
      assert.equal(p.itLink.ofType('response').filter((frame) => frame.error === undefined).length, 1);
    },
  },
  {
    name: 'a response',
    receiver: 'it',
    prepare: (p) => {
      p.send(p.it, {
        type: 'request',
        session: p.session,
        id: 9,
        topic: 'press-7/setpoints/a',
        timeoutMs: 1_000,
        payload: new Uint8Array(8),
      });
      return p.otLink.ofType('request')[0]!.id;
    },
    act: (p, relayId) =>
      p.send(p.ot, { type: 'response', session: p.session, id: relayId, payload: new Uint8Array(8) }),
    forwarded: 'response',
    refused: (p) =>
      p.otLink
        .ofType('error')
        .some((frame) => frame.session === p.session && frame.code === 'RELAY_ERR_PEER_BUSY'),
    unchanged: (p, relayId) => {
      // The request is still pending: the answer, sent again, reaches the requester.
      p.send(p.ot, { type: 'response', session: p.session, id: relayId, payload: new Uint8Array(8) });
      assert.deepEqual(
        p.itLink.ofType('response').map((frame) => [frame.id, frame.error?.code]),
        [[9, undefined]],
      );
    },
  },
];

describe('relay/server forwarding to a receiver with no room', () => {
  for (const row of CASES) {
    it(`refuses ${row.name} with PEER_BUSY, changes nothing, and does not cut the receiver`, async () => {
      const p = pair();
      const prepared = row.prepare?.(p) ?? 0;
      const receiver = row.receiver === 'ot' ? p.otLink : p.itLink;
      const before = count(receiver, row.forwarded);
      receiver.queuedBytes = NO_ROOM;
      row.act(p, prepared);
      await Promise.resolve(); // a slow-consumer cut would run right after the handler
      assert.equal(count(receiver, row.forwarded), before, `${row.forwarded} was forwarded`);
      assert.ok(row.refused(p), 'the sender was not told PEER_BUSY');
      assert.equal(receiver.closed, undefined, 'the receiver was cut');
      receiver.queuedBytes = 0;
      row.unchanged(p, prepared);
    });
  }
});

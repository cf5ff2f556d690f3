import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { pino } from 'pino';
import { encodeFrame } from '../../../relay/protocol/codec.ts';
import type { ToRelayFrame } from '../../../relay/protocol/frames.ts';
import type { AgentConnection } from '../../../relay/server/agent-connection.ts';
import { Broker } from '../../../relay/server/broker.ts';
import { validateRelayConfig } from '../../../relay/server/config.ts';
import { RelayMetrics } from '../../../relay/server/metrics.ts';
import { Policy } from '../../../relay/server/policy.ts';
import { MemoryLink } from '../../support/memory-link.ts';

const config = validateRelayConfig(
  {
    trustDomain: 'plant.example',
    state: 's',
    limits: { maxQueuedBytesPerConsumer: 64 * 1024, slowConsumerGraceMs: 1000 },
    sessions: { leaseMs: 3000, offerTimeoutMs: 500 },
    policy: [{ role: 'ot' }, { role: 'it', subscribe: ['#'], command: ['#'] }],
  },
  '/',
);

describe('broker (in memory)', () => {
  let clock: number;
  let broker: Broker;
  const send = (connection: AgentConnection, frame: ToRelayFrame) =>
    broker.receive(connection, encodeFrame(frame));

  function join(role: 'ot' | 'it', name: string): [AgentConnection, MemoryLink] {
    const link = new MemoryLink(role, name);
    const connection = broker.attach(link);
    assert.ok(connection);
    send(connection, { type: 'hello', software: 'test' });
    return [connection, link];
  }

  function openSession(): {
    ot: AgentConnection;
    otLink: MemoryLink;
    it: AgentConnection;
    itLink: MemoryLink;
    session: number;
  } {
    const [ot, otLink] = join('ot', 'press-7');
    const [it, itLink] = join('it', 'historian');
    send(it, { type: 'sessionOpen', ref: 1, peer: 'press-7', filter: 'press-7/#' });
    const offer = otLink.ofType('sessionOpen')[0];
    assert.ok(offer);
    send(ot, { type: 'sessionAccept', session: offer.session });
    send(it, { type: 'subscribe', ref: 2, session: offer.session, filter: 'press-7/#' });
    return { ot, otLink, it, itLink, session: offer.session };
  }

  beforeEach(() => {
    clock = 1_000_000;
    broker = new Broker({
      config,
      policy: new Policy(config.policy),
      audit: { record: () => undefined },
      metrics: new RelayMetrics(),
      log: pino({ level: 'silent' }),
      now: () => clock,
    });
  });

  it('drops live points for a consumer past its queue limit, reports the count, then resumes', () => {
    const { ot, itLink, session } = openSession();
    const publish = (seq: number) =>
      send(ot, { type: 'publish', topic: 'press-7/t', seq, count: 1, points: new Uint8Array(8) });
    publish(1);
    itLink.queuedBytes = 64 * 1024 + 1;
    publish(2);
    publish(3);
    itLink.queuedBytes = 0;
    publish(4);
    assert.deepEqual(
      itLink.frames
        .filter((frame) => frame.type === 'deliver' || frame.type === 'dropped')
        .map((frame) => (frame.type === 'deliver' ? `deliver ${frame.seq}` : `dropped ${frame.points}`)),
      ['deliver 1', 'dropped 2', 'deliver 4'],
    );
    assert.equal(itLink.closed, undefined);
    assert.ok(itLink.ofType('dropped').every((frame) => frame.session === session));
  });

  it('disconnects a consumer that stays behind longer than the grace period, even with no new data', async () => {
    const { ot, itLink, otLink } = openSession();
    itLink.queuedBytes = 10 * 1024 * 1024;
    send(ot, { type: 'publish', topic: 'press-7/t', seq: 1, count: 1, points: new Uint8Array(8) });
    clock += 999;
    broker.tick();
    assert.equal(itLink.closed, undefined);
    clock += 2;
    broker.tick();
    await Promise.resolve(); // the cut runs right after the handler that found the consumer behind
    assert.deepEqual(itLink.closed, { code: 1013, reason: 'RELAY_ERR_SLOW_CONSUMER' });
    assert.equal(otLink.ofType('sessionClose')[0]?.code, 'RELAY_ERR_SLOW_CONSUMER');
  });

  it('renews leases while both sides answer, and ends sessions when one goes silent', () => {
    const { ot, otLink, itLink } = openSession();
    clock += 1500;
    send(ot, { type: 'pong', nonce: 1 });
    broker.tick();
    assert.ok(itLink.ofType('sessionLease').length >= 1 && otLink.ofType('sessionLease').length >= 1);
    // The IT agent said nothing since it joined: 3 s later its lease lapses.
    clock += 1501;
    send(ot, { type: 'pong', nonce: 2 });
    broker.tick();
    assert.deepEqual(itLink.closed, { code: 4001, reason: 'RELAY_ERR_LEASE_EXPIRED' });
    assert.equal(otLink.ofType('sessionClose')[0]?.code, 'RELAY_ERR_LEASE_EXPIRED');
    assert.equal(broker.sessionCount, 0);
  });

  it('refuses a request the responder has no room for, instead of cutting the responder', async () => {
    const { it, itLink, otLink, session } = openSession();
    otLink.queuedBytes = 60 * 1024; // the OT agent is 60 KiB behind its 64 KiB limit
    send(it, {
      type: 'request',
      session,
      id: 5,
      topic: 'press-7/setpoints/a',
      timeoutMs: 1000,
      payload: new Uint8Array(8 * 1024),
    });
    await Promise.resolve();
    assert.deepEqual(
      itLink.ofType('response').map((frame) => [frame.id, frame.error?.code]),
      [[5, 'RELAY_ERR_PEER_BUSY']],
    );
    assert.equal(otLink.ofType('request').length, 0);
    assert.equal(otLink.closed, undefined);
  });

  it('ends an offer the OT agent never answers, telling the IT agent', () => {
    const [, otLink] = join('ot', 'press-7');
    const [it, itLink] = join('it', 'historian');
    send(it, { type: 'sessionOpen', ref: 7, peer: 'press-7', filter: 'press-7/#' });
    clock += 501;
    broker.tick();
    assert.deepEqual(
      itLink.ofType('error').map((frame) => [frame.ref, frame.code]),
      [[7, 'RELAY_ERR_SESSION_REFUSED']],
    );
    assert.equal(otLink.ofType('sessionClose')[0]?.code, 'RELAY_ERR_SESSION_REFUSED');
  });

  it('cuts live connections by certificate serial (revocation)', () => {
    const { itLink, otLink } = openSession();
    assert.equal(broker.disconnectSerials(new Set(['historian'])), 1);
    assert.deepEqual(itLink.closed, { code: 1008, reason: 'RELAY_ERR_REVOKED' });
    assert.equal(otLink.closed, undefined);
    assert.equal(otLink.ofType('sessionClose')[0]?.code, 'RELAY_ERR_REVOKED');
  });
});

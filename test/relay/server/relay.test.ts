import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LinkEvents } from '../../../agents/link/relay-link.ts';
import type { ToAgentFrameOf } from '../../../relay/protocol/frames.ts';
import { RawAgent } from '../../support/raw-agent.ts';
import { startTestRelay, type RecordingAgent, type TestRelay } from '../../support/relay-harness.ts';
import { readMetric } from '../../support/metrics.ts';
import { createTestPki, type TestPki } from '../../support/test-pki.ts';
import { waitFor } from '../../support/wait.ts';
import { decodePointBatch } from '../../../agents/points/batch.ts';

const text = (value: string): Uint8Array => new TextEncoder().encode(value);
const decoded = (value: Uint8Array): string => new TextDecoder().decode(value);
/** The points of a deliver as plain arrays, so Buffers and Uint8Arrays compare by content. */
const contents = (frame: ToAgentFrameOf<'deliver'>): number[][] =>
  decodePointBatch(frame.points, frame.count).map((point) => [...point]);

/** Every deliver frame an agent received, in order. */
function deliveries(agent: RecordingAgent): ToAgentFrameOf<'deliver'>[] {
  return agent.frames.filter((frame): frame is ToAgentFrameOf<'deliver'> => frame.type === 'deliver');
}

/** A request handler whose answer the test releases when it wants to (or never). */
function heldAnswer(): { promise: Promise<Uint8Array>; release(payload: Uint8Array): void } {
  let release!: (payload: Uint8Array) => void;
  const promise = new Promise<Uint8Array>((resolve) => {
    release = resolve;
  });
  return { promise, release };
}

describe('relay/server end to end', () => {
  let pki: TestPki;
  let t: TestRelay;
  let names = 0;

  before(async () => {
    pki = await createTestPki();
    t = await startTestRelay(pki, {
      policy: [
        { role: 'ot', command: ['+/alarms/#'] },
        { role: 'it', subscribe: ['#'], command: ['#'] },
      ],
    });
  });
  after(() => t.stop());

  /** A fresh OT agent and IT agent (unique names) with a session under `filter` (`<ot>/...`). */
  async function pair(
    filterBelow = '#',
    events: { ot?: LinkEvents; it?: LinkEvents } = {},
  ): Promise<{ ot: RecordingAgent; it: RecordingAgent; otName: string; session: number }> {
    names++;
    const otName = `press-${names}`;
    const ot = await t.connect('ot', otName, events.ot);
    const it = await t.connect('it', `historian-${names}`, events.it);
    const { session } = await it.client.openSession(otName, `${otName}/${filterBelow}`);
    return { ot, it, otName, session };
  }

  it('relay - an IT subscriber receives what the OT agent publishes: topic, seq and point bytes', async () => {
    const { ot, it, otName, session } = await pair();
    await it.client.subscribe(session, `${otName}/temps/+`);
    const subscribed = await ot.next('subscribe');
    assert.deepEqual(
      { session: subscribed.session, filter: subscribed.filter },
      { session, filter: `${otName}/temps/+` },
      'the OT agent learns what to send',
    );

    ot.client.publish(`${otName}/temps/t1`, 41, [Uint8Array.of(1, 2, 3), Uint8Array.of(4, 5)]);
    const delivered = await it.next('deliver');
    assert.equal(delivered.session, session);
    assert.equal(delivered.topic, `${otName}/temps/t1`);
    assert.equal(delivered.seq, 41);
    assert.deepEqual(contents(delivered), [
      [1, 2, 3],
      [4, 5],
    ]);
  });

  const WILDCARDS: readonly {
    name: string;
    subscribe: string;
    /** Topics below the OT agent's namespace, published in this order. */
    published: readonly string[];
    delivered: readonly string[];
  }[] = [
    {
      name: '"+" matches exactly one level',
      subscribe: '+/t1',
      published: ['temps/t2', 'temps/t1', 'a/b/t1', 'flows/t1'],
      delivered: ['temps/t1', 'flows/t1'],
    },
    {
      name: '"#" matches the level itself and everything below',
      subscribe: 'temps/#',
      published: ['tempsx/t1', 'temps', 'flows/t1', 'temps/t1/raw'],
      delivered: ['temps', 'temps/t1/raw'],
    },
    {
      name: '"+" and "#" together',
      subscribe: '+/line-a/#',
      published: ['cell/line-b/t1', 'cell/line-a/t1', 'line-a/t1', 'cell/line-a/x/y'],
      delivered: ['cell/line-a/t1', 'cell/line-a/x/y'],
    },
  ];
  for (const row of WILDCARDS) {
    it(`relay - wildcard subscription: ${row.name}`, async () => {
      const { ot, it, otName, session } = await pair();
      await it.client.subscribe(session, `${otName}/${row.subscribe}`);
      row.published.forEach((topic, index) =>
        ot.client.publish(`${otName}/${topic}`, index, [Uint8Array.of(index)]),
      );
      // The last topic published is delivered: once it arrives, everything before it has been routed.
      const last = row.published.length - 1;
      await it.next('deliver', (frame) => frame.seq === last);
      assert.deepEqual(
        deliveries(it).map((frame) => frame.topic),
        row.delivered.map((topic) => `${otName}/${topic}`),
      );
    });
  }

  const OUTSIDE: readonly { name: string; session: string; subscribe: string; outside: string }[] = [
    { name: 'outside the subscription', session: '#', subscribe: 'temps/#', outside: 'flows/t1' },
    { name: 'outside the session filter', session: 'temps/#', subscribe: '+/t1', outside: 'flows/t1' },
  ];
  for (const row of OUTSIDE) {
    it(`relay - a point ${row.name} is not delivered`, async () => {
      const { ot, it, otName, session } = await pair(row.session);
      await it.client.subscribe(session, `${otName}/${row.subscribe}`);
      ot.client.publish(`${otName}/${row.outside}`, 1, [Uint8Array.of(1)]);
      ot.client.publish(`${otName}/temps/t1`, 2, [Uint8Array.of(2)]);
      await it.next('deliver', (frame) => frame.seq === 2);
      assert.deepEqual(
        deliveries(it).map((frame) => [frame.topic, frame.seq]),
        [[`${otName}/temps/t1`, 2]],
      );
    });
  }

  it('relay - one published frame fans out to three IT subscribers, each in order', async () => {
    const ot = await t.connect('ot', 'mixer-1');
    const subscribers = await Promise.all(
      ['hmi-1', 'hmi-2', 'hmi-3'].map(async (name) => {
        const it = await t.connect('it', name);
        const { session } = await it.client.openSession('mixer-1', 'mixer-1/#');
        await it.client.subscribe(session, 'mixer-1/#');
        return { it, session };
      }),
    );
    for (let seq = 1; seq <= 5; seq++) ot.client.publish('mixer-1/speed', seq, [Uint8Array.of(seq)]);
    for (const { it, session } of subscribers) {
      await it.next('deliver', (frame) => frame.seq === 5);
      assert.deepEqual(
        deliveries(it).map((frame) => [frame.session, frame.seq, contents(frame)[0]]),
        [1, 2, 3, 4, 5].map((seq) => [session, seq, [seq]]),
      );
    }
  });

  it('relay - a publish directed at one session (a replay) reaches only that session', async () => {
    const { ot, it: first, otName, session } = await pair();
    const second = await t.connect('it', `${otName}-viewer`);
    const other = await second.client.openSession(otName, `${otName}/#`);
    await first.client.subscribe(session, `${otName}/#`);
    await second.client.subscribe(other.session, `${otName}/#`);

    ot.client.publish(`${otName}/temps/t1`, 1, [text('replayed')], session);
    ot.client.publish(`${otName}/temps/t1`, 2, [text('live')]);
    await first.next('deliver', (frame) => frame.seq === 2);
    await second.next('deliver', (frame) => frame.seq === 2);
    assert.deepEqual(
      deliveries(first).map((frame) => frame.seq),
      [1, 2],
    );
    assert.deepEqual(
      deliveries(second).map((frame) => frame.seq),
      [2],
    );
  });

  it('relay - a request from IT is answered by OT', async () => {
    const { it, otName, session } = await pair('#', {
      ot: { request: (request) => text(`${request.topic}=${decoded(request.payload)}`) },
    });
    const answer = await it.client.request(session, `${otName}/setpoints/speed`, text('42'), 2_000);
    assert.equal(decoded(answer), `${otName}/setpoints/speed=42`);
  });

  it("relay - a session with one OT agent carries only that agent's topics: no writes to another agent through it", async () => {
    let executed = 0;
    const { it, otName: victim } = await pair();
    const { otName: accomplice } = await pair('#', {
      ot: {
        request: () => {
          executed++;
          return text('done');
        },
      },
    });
    // A filter naming another agent's topics is refused outright...
    await assert.rejects(it.client.openSession(accomplice, `${victim}/#`), { code: 'RELAY_ERR_FORBIDDEN' });
    // ...and a wide filter opens, but a request for another agent's topic never reaches the peer.
    const { session } = await it.client.openSession(accomplice, '#');
    await assert.rejects(it.client.request(session, `${victim}/setpoints/speed`, text('500'), 2_000), {
      code: 'RELAY_ERR_FORBIDDEN',
    });
    assert.equal(
      decoded(await it.client.request(session, `${accomplice}/setpoints/speed`, text('5'), 2_000)),
      'done',
    );
    assert.equal(executed, 1);
  });

  it('relay - a request from OT is answered by IT when policy grants OT that command', async () => {
    const { ot, otName, session } = await pair('#', {
      it: { request: (request) => text(`ack ${request.topic}`) },
    });
    const answer = await ot.client.request(session, `${otName}/alarms/overtemp`, text('raise'), 2_000);
    assert.equal(decoded(answer), `ack ${otName}/alarms/overtemp`);
    await assert.rejects(ot.client.request(session, `${otName}/setpoints/speed`, text('1'), 2_000), {
      code: 'RELAY_ERR_FORBIDDEN',
    });
  });

  it('relay - an unanswered request times out; the late answer is dropped, not delivered', async () => {
    const held = heldAnswer();
    const otName = `press-${++names}`;
    await t.connect('ot', otName, {
      request: (request) => (request.topic.endsWith('/slow') ? held.promise : text('fast')),
    });
    // Raw: whether a second response for the timed-out id arrives shows only in the frames.
    const it = await t.connectRaw('it', `historian-${names}`);
    const { session } = await it.openSession(otName, `${otName}/#`);
    const ask = (id: number, topic: string, timeoutMs: number) =>
      it.send({ type: 'request', session, id, topic, timeoutMs, payload: text('?') });
    const lateBefore = await readMetric(t.relay, 'dmz_relay_requests_total', { outcome: 'late_or_unknown' });
    const started = Date.now();
    ask(101, `${otName}/slow`, 300);
    const timedOut = await it.next('response', (frame) => frame.id === 101);
    assert.equal(timedOut.error?.code, 'RELAY_ERR_TIMEOUT');
    assert.ok(Date.now() - started >= 290, 'timed out before the deadline');

    held.release(text('too late'));
    await waitFor(
      async () =>
        (await readMetric(t.relay, 'dmz_relay_requests_total', { outcome: 'late_or_unknown' })) > lateBefore,
      'the relay to drop the late answer',
    );
    // A later round trip on the same path: had the late answer been forwarded, it would be here first.
    ask(102, `${otName}/fast`, 2_000);
    const fast = await it.next('response', (frame) => frame.id === 102);
    assert.equal(decoded(fast.payload ?? new Uint8Array()), 'fast');
    assert.deepEqual(
      it.frames
        .filter((frame) => frame.type === 'response' && frame.id === timedOut.id)
        .map((frame) => frame.type === 'response' && frame.error?.code),
      ['RELAY_ERR_TIMEOUT'],
    );
  });

  it('relay - an OT agent that refuses a session makes openSession fail with SESSION_REFUSED', async () => {
    const ot = await t.connect('ot', 'kiln-1', { sessionOffered: () => false });
    const it = await t.connect('it', 'kiln-viewer');
    await assert.rejects(it.client.openSession('kiln-1', 'kiln-1/#'), { code: 'RELAY_ERR_SESSION_REFUSED' });
    const offer = await ot.next('sessionOpen');
    assert.equal(offer.peer, 'kiln-viewer', 'the OT agent is told who asks');
  });

  it('relay - a session closed by IT ends at OT, and one closed by OT ends at IT', async () => {
    const byIt = await pair();
    byIt.it.client.closeSession(byIt.session);
    const atOt = await byIt.ot.next('sessionClose');
    assert.deepEqual([atOt.session, atOt.code], [byIt.session, 'RELAY_ERR_SESSION_CLOSED']);
    await assert.rejects(byIt.it.client.subscribe(byIt.session, `${byIt.otName}/#`), {
      code: 'RELAY_ERR_NO_SUCH_SESSION',
    });

    const byOt = await pair();
    byOt.ot.client.closeSession(byOt.session);
    const atIt = await byOt.it.next('sessionClose');
    assert.deepEqual([atIt.session, atIt.code], [byOt.session, 'RELAY_ERR_SESSION_CLOSED']);
    await assert.rejects(byOt.it.client.subscribe(byOt.session, `${byOt.otName}/#`), {
      code: 'RELAY_ERR_NO_SUCH_SESSION',
    });
  });

  it('relay - when the OT agent goes away, the IT side sees its session end and pending requests fail', async () => {
    const never = heldAnswer();
    const { ot, it, otName, session } = await pair('#', { ot: { request: () => never.promise } });
    const pending = it.client.request(session, `${otName}/setpoints/speed`, text('1'), 30_000);
    await ot.next('request');
    await ot.client.close();
    await assert.rejects(pending, { code: 'RELAY_ERR_SESSION_CLOSED' });
    const closed = await it.next('sessionClose');
    assert.deepEqual([closed.session, closed.code], [session, 'RELAY_ERR_SESSION_CLOSED']);
    assert.equal(it.closed, undefined, 'the IT agent itself stays connected');
  });

  it('relay - a session with an OT agent that is not connected fails with NO_SUCH_PEER', async () => {
    const it = await t.connect('it', 'lonely-viewer');
    await assert.rejects(it.client.openSession('nobody-here', 'nobody-here/#'), {
      code: 'RELAY_ERR_NO_SUCH_PEER',
    });
  });

  it('relay - a second connection of the same agent replaces the first', async () => {
    const { ot: first, it, otName, session } = await pair();
    const second = await t.connect('ot', otName);
    assert.deepEqual(await first.waitClosed(), { code: 4000, reason: 'RELAY_ERR_REPLACED' });
    const ended = await it.next('sessionClose');
    assert.deepEqual([ended.session, ended.code], [session, 'RELAY_ERR_REPLACED']);
    // The new connection is the one the relay now routes to.
    const { session: fresh } = await it.client.openSession(otName, `${otName}/#`);
    await it.client.subscribe(fresh, `${otName}/#`);
    second.client.publish(`${otName}/temps/t1`, 7, [Uint8Array.of(7)]);
    assert.equal((await it.next('deliver')).session, fresh);
  });

  it('relay - connections and session openings and closings are audited', async () => {
    const { ot, it, otName, session } = await pair();
    it.client.closeSession(session);
    await ot.next('sessionClose');
    const itName = `historian-${names}`;
    const connected = await t.audit.waitFor(
      (entry) => entry.event === 'agent.connected' && entry['agent'] === otName,
      'OT connection',
    );
    assert.equal(connected['role'], 'ot');
    assert.match(String(connected['serial']), /^[0-9a-f]+$/);
    await t.audit.waitFor(
      (entry) => entry.event === 'agent.connected' && entry['agent'] === itName && entry['role'] === 'it',
      'IT connection',
    );
    const opened = await t.audit.waitFor(
      (entry) => entry.event === 'session.opened' && entry['session'] === session,
      'session opened',
    );
    assert.deepEqual([opened['it'], opened['ot'], opened['filter']], [itName, otName, `${otName}/#`]);
    const closed = await t.audit.waitFor(
      (entry) => entry.event === 'session.closed' && entry['session'] === session,
      'session closed',
    );
    assert.deepEqual(
      [closed['it'], closed['ot'], closed['reason']],
      [itName, otName, 'RELAY_ERR_SESSION_CLOSED'],
    );
  });
});

describe('relay/server session leases', () => {
  const LEASE_MS = 1_000;
  let pki: TestPki;
  let t: TestRelay;

  before(async () => {
    pki = await createTestPki();
    t = await startTestRelay(pki, { sessions: { leaseMs: LEASE_MS } });
  });
  after(() => t.stop());

  it('relay - the relay renews a live session lease, and the session outlives it', async () => {
    const ot = await t.connect('ot', 'pump-1');
    const it = await t.connect('it', 'scada');
    const { session, leaseMs } = await it.client.openSession('pump-1', 'pump-1/#');
    assert.equal(leaseMs, LEASE_MS);
    await it.client.subscribe(session, 'pump-1/#');
    const opened = Date.now();
    // A renewal comes once a third of the lease has run: four of them span more than one lease.
    await it.next(
      'sessionLease',
      () => it.frames.filter((frame) => frame.type === 'sessionLease').length >= 4,
    );
    const leases = it.frames.filter((frame) => frame.type === 'sessionLease');
    assert.ok(leases.every((lease) => lease.session === session && lease.leaseMs === LEASE_MS));
    assert.ok(ot.frames.some((frame) => frame.type === 'sessionLease' && frame.session === session));
    assert.ok(Date.now() - opened > LEASE_MS, 'four renewals took less than one lease');
    ot.client.publish('pump-1/flow', 1, [Uint8Array.of(1)]);
    assert.equal((await it.next('deliver')).session, session);
  });

  it('relay - an agent that stops answering pings loses its connection and its sessions', async () => {
    const credentials = await pki.issueAgent('ot', 'pump-2');
    const silent = await RawAgent.open({ url: t.url, caPem: pki.ca.certPem, ...credentials });
    try {
      const it = await t.connect('it', 'scada-2');
      const opening = it.client.openSession('pump-2', 'pump-2/#');
      const offer = await silent.next('sessionOpen');
      silent.send({ type: 'sessionAccept', session: offer.session });
      const lastHeard = Date.now();
      const { session } = await opening;

      // From here on the raw agent says nothing: it ignores the relay's pings.
      await silent.next('ping');
      const closed = await silent.waitClosed(LEASE_MS + 3_000);
      const after = Date.now() - lastHeard;
      assert.deepEqual(closed, { code: 4001, reason: 'RELAY_ERR_LEASE_EXPIRED' });
      assert.ok(after >= LEASE_MS, `closed after ${after} ms, before the lease ran out`);
      assert.ok(after <= LEASE_MS + 1_000, `closed only ${after} ms after the last frame`);
      const ended = await it.next('sessionClose');
      assert.deepEqual([ended.session, ended.code], [session, 'RELAY_ERR_LEASE_EXPIRED']);
      assert.equal(it.closed, undefined, 'the IT agent, which answers pings, stays connected');
    } finally {
      silent.terminate();
    }
  });
});

/**
 * What a stranger can make the relay spend on TLS handshakes: only cheap key-exchange groups are
 * offered (a ClientHello asking for ffdhe8192 is refused before any big-number arithmetic), and
 * handshakes in progress are bounded per source address and overall, with a bounded queue for the
 * rest, so a stalled or flooding client cannot lock honest agents out.
 */
import assert from 'node:assert/strict';
import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { KEY_EXCHANGE_GROUPS } from '../../../relay/protocol/limits.ts';
import { STALE_HANDSHAKE_MS } from '../../../relay/server/connection-gate.ts';
import { parseNetwork, SourceBudgets, type SourceBudget } from '../../../relay/server/trusted-sources.ts';
import { createEnrollmentFixture, type EnrollmentFixture } from '../../support/enrollment-fixture.ts';
import { readMetric } from '../../support/metrics.ts';
import { startTestRelay, type TestRelay } from '../../support/relay-harness.ts';
import { createTestPki, type TestPki } from '../../support/test-pki.ts';
import { waitFor } from '../../support/wait.ts';

/** A TLS 1.3 handshake offering only `group`: 'established' or the error that ended it. */
function handshakeWith(
  port: number,
  group: string,
  credentials?: { certPem: string; keyPem: string },
): Promise<string> {
  return new Promise((resolve) => {
    const socket = connectTls({
      host: '127.0.0.1',
      port,
      ecdhCurve: group,
      minVersion: 'TLSv1.3',
      // Only the key exchange is under test here; the certificate checks have their own tests.
      rejectUnauthorized: false,
      ...(credentials === undefined ? {} : { cert: credentials.certPem, key: credentials.keyPem }),
    });
    socket.once('secureConnect', () => {
      socket.destroy();
      resolve('established');
    });
    socket.once('error', (error: Error & { code?: string }) => resolve(error.code ?? error.message));
  });
}

/** A TCP connection that never says a word: it holds a handshake slot until it is cut. */
function stalledConnection(
  port: number,
  localAddress: string,
): Promise<{ socket: Socket; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connectTcp({ host: '127.0.0.1', port, localAddress });
    const closed = new Promise<void>((done) => socket.once('close', () => done()));
    socket.once('connect', () => resolve({ socket, closed }));
    socket.once('error', reject);
  });
}

/** Whether the relay dropped `socket` before answering anything (within `withinMs`). */
function droppedWithin(stalled: { closed: Promise<void> }, withinMs: number): Promise<boolean> {
  return Promise.race([
    stalled.closed.then(() => true),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(false), withinMs)),
  ]);
}

describe('relay/server key-exchange groups', () => {
  let pki: TestPki;
  let t: TestRelay;
  let enrollment: EnrollmentFixture;
  let enrollmentPort: number;

  before(async () => {
    pki = await createTestPki();
    t = await startTestRelay(pki);
    enrollment = await createEnrollmentFixture();
    enrollmentPort = (await enrollment.listen()).port;
  });
  after(async () => {
    await t.stop();
    await enrollment.close();
  });

  const FINITE_FIELD = ['ffdhe2048', 'ffdhe8192'];
  const OFFERED = KEY_EXCHANGE_GROUPS.split(':');

  for (const group of FINITE_FIELD) {
    it(`tls - a client offering only ${group} is refused on the agent and the enrollment port`, async () => {
      const agent = await pki.issueAgent('ot', 'press-7');
      assert.match(await handshakeWith(t.relay.agentPort, group, agent), /HANDSHAKE_FAILURE/);
      assert.match(await handshakeWith(enrollmentPort, group), /HANDSHAKE_FAILURE/);
    });
  }
  for (const group of OFFERED) {
    it(`tls - ${group} completes on the agent and the enrollment port`, async () => {
      const agent = await pki.issueAgent('ot', 'press-7');
      assert.equal(await handshakeWith(t.relay.agentPort, group, agent), 'established');
      assert.equal(await handshakeWith(enrollmentPort, group), 'established');
    });
  }
});

describe('relay/server handshakes in progress', () => {
  let pki: TestPki;
  const held: Socket[] = [];
  const stall = async (port: number, source: string) => {
    const stalled = await stalledConnection(port, source);
    held.push(stalled.socket);
    return stalled;
  };

  before(async () => {
    pki = await createTestPki();
  });
  after(() => {
    for (const socket of held) socket.destroy();
  });

  it('relay - one address gets handshakesInProgressPerAddress slots; the next is dropped before TLS, others connect', async () => {
    const t = await startTestRelay(pki, {
      limits: { handshakesInProgress: 16, handshakesInProgressPerAddress: 2 },
    });
    try {
      const first = [
        await stall(t.relay.agentPort, '127.0.0.7'),
        await stall(t.relay.agentPort, '127.0.0.7'),
      ];
      const third = await stall(t.relay.agentPort, '127.0.0.7');
      assert.equal(
        await droppedWithin(third, 2_000),
        true,
        'a third stalled handshake from one address was kept',
      );
      for (const stalled of first) assert.equal(await droppedWithin(stalled, 100), false);
      const refused = await t.audit.waitFor(
        (entry) => entry.event === 'agent.refused' && entry['address'] === '127.0.0.7',
        'the refusal',
      );
      assert.deepEqual([refused['reason'], refused['detail']], ['RELAY_ERR_BUSY', 'address_busy']);
      assert.equal(
        await readMetric(t.relay, 'dmz_relay_connections_refused_total', { reason: 'address_busy' }),
        1,
      );
      const agent = await t.connect('ot', 'press-7');
      assert.equal(agent.client.welcome.name, 'press-7');
    } finally {
      await t.stop();
    }
  });

  it('relay - with every slot taken, an agent waits in the queue and connects when a slot frees', async () => {
    // The stalled handshakes give their slots up (their clients hang up) well inside the time a
    // queued connection may wait (the handshake timeout), so a loaded machine cannot reorder them.
    const RELEASE_AFTER_MS = 400;
    const t = await startTestRelay(pki, {
      tls: { handshakeTimeoutMs: 5_000 },
      limits: { handshakesInProgress: 2, handshakesInProgressPerAddress: 1, handshakeQueue: 8 },
    });
    try {
      const stalls = [
        await stall(t.relay.agentPort, '127.0.0.8'),
        await stall(t.relay.agentPort, '127.0.0.9'),
      ];
      const started = Date.now();
      setTimeout(() => {
        for (const stalled of stalls) stalled.socket.destroy();
      }, RELEASE_AFTER_MS);
      const agent = await t.connect('ot', 'press-7');
      const waited = Date.now() - started;
      assert.equal(agent.client.welcome.name, 'press-7');
      // It got in when the stalled handshakes let go of their slots, not before.
      assert.ok(waited >= RELEASE_AFTER_MS - 50, `connected after ${waited} ms`);
    } finally {
      await t.stop();
    }
  });

  it('relay - with every slot taken and no queue, a connection is refused at once', async () => {
    const t = await startTestRelay(pki, {
      limits: { handshakesInProgress: 1, handshakesInProgressPerAddress: 1, handshakeQueue: 0 },
    });
    try {
      await stall(t.relay.agentPort, '127.0.0.10');
      const next = await stall(t.relay.agentPort, '127.0.0.11');
      assert.equal(await droppedWithin(next, 2_000), true);
      await t.audit.waitFor(
        (entry) =>
          entry.event === 'agent.refused' &&
          entry['address'] === '127.0.0.11' &&
          entry['detail'] === 'relay_busy',
        'the refusal',
      );
    } finally {
      await t.stop();
    }
  });

  it(`relay - under pressure, a handshake stalled longer than ${STALE_HANDSHAKE_MS} ms gives its slot to a newcomer`, async () => {
    const t = await startTestRelay(pki, {
      limits: { handshakesInProgress: 1, handshakesInProgressPerAddress: 1, handshakeQueue: 8 },
    });
    try {
      const stalled = await stall(t.relay.agentPort, '127.0.0.12');
      const since = Date.now();
      await waitFor(
        () => Date.now() - since > STALE_HANDSHAKE_MS,
        'the stalled handshake going stale',
        STALE_HANDSHAKE_MS + 1_000,
        50,
      );
      const started = Date.now();
      const agent = await t.connect('ot', 'press-7');
      assert.equal(agent.client.welcome.name, 'press-7');
      assert.ok(Date.now() - started < 2_000, 'the newcomer waited for the handshake timeout');
      assert.equal(await droppedWithin(stalled, 1_000), true, 'the stale handshake was kept');
    } finally {
      await t.stop();
    }
  });
});

describe('relay/server trusted source networks', () => {
  it('sources - an address gets the budget of the first trusted network holding it, else the default', () => {
    const fallback = { connectionAttemptsPerMinute: 120, handshakesInProgressPerAddress: 8 };
    const natOt = {
      network: '192.0.2.10/32',
      connectionAttemptsPerMinute: 6000,
      handshakesInProgressPerAddress: 64,
    };
    const itSite = {
      network: '2001:db8:7::/48',
      connectionAttemptsPerMinute: 3000,
      handshakesInProgressPerAddress: 32,
    };
    const budgets = new SourceBudgets(fallback, [natOt, itSite]);
    const ROWS: readonly [string, SourceBudget][] = [
      ['192.0.2.10', natOt],
      ['::ffff:192.0.2.10', natOt],
      ['192.0.2.11', fallback],
      ['2001:db8:7:1::5', itSite],
      ['2001:db8:8::5', fallback],
      ['unknown', fallback],
    ];
    for (const [address, expected] of ROWS) assert.equal(budgets.budgetOf(address), expected, address);
  });

  it('sources - networks that are not address/prefix are refused', () => {
    for (const network of [
      '192.0.2.10',
      '192.0.2.0/33',
      '2001:db8::/129',
      'plant.example/24',
      '10.0.0.0/8/8',
      '10.0.0.0/0x8',
    ]) {
      assert.equal(parseNetwork(network), undefined, network);
    }
  });

  it("relay - agents behind a trusted NAT address reconnect beyond the strangers' rate; a stranger stays limited", async () => {
    const pki = await createTestPki();
    const ATTEMPTS = 3;
    const t = await startTestRelay(pki, {
      limits: {
        connectionAttemptsPerMinute: ATTEMPTS,
        trustedSources: [
          { network: '127.0.0.1/32', connectionAttemptsPerMinute: 1000, handshakesInProgressPerAddress: 16 },
        ],
      },
    });
    try {
      for (let index = 0; index < 3 * ATTEMPTS; index++) {
        const agent = await t.connect('ot', `plc-${index}`);
        assert.equal(agent.client.welcome.name, `plc-${index}`);
      }
      const outcomes: boolean[] = [];
      for (let attempt = 0; attempt <= ATTEMPTS; attempt++) {
        outcomes.push(await droppedWithin(await stalledConnection(t.relay.agentPort, '127.0.0.40'), 500));
      }
      assert.deepEqual(outcomes, [false, false, false, true], 'the stranger got more than its rate');
    } finally {
      await t.stop();
    }
  });
});

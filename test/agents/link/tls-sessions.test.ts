/**
 * The link's TLS session tickets: the next connection to the same relay with the same credentials
 * resumes; a change of credentials (a renewal, a re-enrollment) or of trust anchor never offers an
 * old ticket; a connection the relay refused leaves no ticket behind.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RelayLink } from '../../../agents/link/relay-link.ts';
import { TlsSessionCache, type SessionScope } from '../../../agents/link/tls-sessions.ts';
import { readMetric } from '../../support/metrics.ts';
import { startTestRelay, type TestRelay } from '../../support/relay-harness.ts';
import { createTestPki, type TestPki } from '../../support/test-pki.ts';

const HANDSHAKES = 'dmz_relay_agent_handshakes_total';

describe('agents/link/tls-sessions - the cache', () => {
  const scope = (url: string, certPem = 'cert', caPem = 'ca'): SessionScope => ({ url, certPem, caPem });

  it('tls sessions - a ticket is offered only for its URL, certificate and CA', () => {
    const cache = new TlsSessionCache();
    const ticket = Buffer.from('ticket');
    cache.remember(scope('wss://a'), ticket);
    assert.equal(cache.sessionFor(scope('wss://a')), ticket);
    const others: readonly [string, SessionScope][] = [
      ['another relay URL', scope('wss://b')],
      ['a renewed certificate', scope('wss://a', 'cert-2')],
      ['another trust anchor', scope('wss://a', 'cert', 'ca-2')],
      // Length-prefixed: shifting text between the parts is another scope.
      ['the same text split otherwise', scope('wss://ac', 'ert')],
    ];
    for (const [what, other] of others) assert.equal(cache.sessionFor(other), undefined, what);
  });

  it('tls sessions - the latest ticket wins, and past its capacity the least recently used goes', () => {
    const cache = new TlsSessionCache(2);
    cache.remember(scope('wss://a'), Buffer.from('a1'));
    cache.remember(scope('wss://a'), Buffer.from('a2'));
    cache.remember(scope('wss://b'), Buffer.from('b'));
    assert.equal(cache.sessionFor(scope('wss://a'))?.toString(), 'a2');
    cache.remember(scope('wss://c'), Buffer.from('c'));
    assert.equal(cache.size, 2);
    assert.equal(cache.sessionFor(scope('wss://b')), undefined, 'b was the least recently used');
    assert.equal(cache.sessionFor(scope('wss://a'))?.toString(), 'a2');
    cache.forget(scope('wss://a'));
    assert.equal(cache.sessionFor(scope('wss://a')), undefined);
    cache.clear();
    assert.equal(cache.size, 0);
  });

  it('tls sessions - a capacity below one is refused', () => {
    for (const capacity of [0, -1, 1.5, Number.NaN])
      assert.throws(() => new TlsSessionCache(capacity), RangeError);
  });
});

describe('agents/link/tls-sessions - a real relay', () => {
  let pki: TestPki;
  let t: TestRelay;
  before(async () => {
    pki = await createTestPki();
    t = await startTestRelay(pki);
  });
  after(() => t.stop());

  it('tls sessions - the second connection with the same credentials resumes; renewed credentials do not', async () => {
    const sessions = new TlsSessionCache();
    const credentials = await pki.issueAgent('ot', 'press-4');
    const options = { url: t.url, caPem: pki.ca.certPem, ...credentials, tlsSessions: sessions };
    const first = await RelayLink.connect(options);
    assert.equal(first.tlsResumed, false);
    await first.close();
    const second = await RelayLink.connect(options);
    assert.equal(second.tlsResumed, true);
    await second.close();
    assert.equal(await readMetric(t.relay, HANDSHAKES, { session: 'resumed' }), 1);

    // A renewal: the same name, a new certificate. Its ticket would resume as the old one.
    const renewed = await pki.issueAgent('ot', 'press-4');
    const third = await RelayLink.connect({ ...options, ...renewed });
    try {
      assert.equal(third.tlsResumed, false, 'a ticket of the old certificate was offered');
      const connected = t.audit.entries.filter(
        (entry) => entry.event === 'agent.connected' && entry['agent'] === 'press-4',
      );
      assert.equal(connected.at(-1)?.['serial'], renewed.serialHex);
    } finally {
      await third.close();
    }
  });
});

describe('agents/link/tls-sessions - a relay that refuses the agent after TLS', () => {
  let pki: TestPki;
  let t: TestRelay;
  before(async () => {
    pki = await createTestPki();
    // Only IT agents are admitted: an OT agent passes TLS and is refused by policy.
    t = await startTestRelay(pki, { policy: [{ role: 'it', subscribe: ['#'] }] });
  });
  after(() => t.stop());

  it('tls sessions - a connection refused after its handshake keeps no ticket', async () => {
    const sessions = new TlsSessionCache();
    const credentials = await pki.issueAgent('ot', 'press-5');
    await assert.rejects(
      RelayLink.connect({ url: t.url, caPem: pki.ca.certPem, ...credentials, tlsSessions: sessions }),
      { code: 'RELAY_ERR_FORBIDDEN' },
    );
    assert.equal(await readMetric(t.relay, HANDSHAKES, { session: 'full' }), 1, 'TLS completed');
    assert.equal(sessions.size, 0);
  });
});

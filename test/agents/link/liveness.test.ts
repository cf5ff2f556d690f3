/**
 * Relay liveness from the agent's side: a relay that says nothing at all for a lease is given up
 * (AGENT_ERR_RELAY_SILENT), one that pings is kept, and a real relay behind a route that turned
 * into a black hole is noticed within about a lease.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { silenceBudgetMs } from '../../../agents/link/liveness.ts';
import { RelayLink, type LinkEvents } from '../../../agents/link/relay-link.ts';
import { DmzError } from '../../../relay/protocol/errors.ts';
import { startBlackHoleProxy, type BlackHoleProxy } from '../../support/black-hole-proxy.ts';
import { startTestRelay, type TestRelay } from '../../support/relay-harness.ts';
import { startScriptedRelay, welcomeFrame, type ScriptedRelay } from '../../support/scripted-relay.ts';
import { createTestPki, type TestPki } from '../../support/test-pki.ts';
import { expectNever, waitFor } from '../../support/wait.ts';

/** Short, so the tests are quick; the real relay's own minimum is 1 s. */
const LEASE_MS = 400;
/** Timers fire late on a loaded machine, never early; this much late is still "about a lease". */
const LATE_MS = 1_000;

let pki: TestPki;
before(async () => {
  pki = await createTestPki();
});

/** A link whose `closed` event is recorded with the time it came. */
async function watchedLink(
  url: string,
  events: LinkEvents = {},
): Promise<{ link: RelayLink; closed: () => { code: number; reason: string; at: number } | undefined }> {
  const credentials = await pki.issueAgent('ot', 'press-7');
  let closed: { code: number; reason: string; at: number } | undefined;
  const link = await RelayLink.connect(
    { url, caPem: pki.ca.certPem, ...credentials },
    {
      ...events,
      closed: (code, reason) => {
        closed = { code, reason, at: performance.now() };
      },
    },
  );
  return { link, closed: () => closed };
}

describe('agents/link/liveness - the silence budget', () => {
  it('is the lease, or two ping intervals if a relay announces pings sparser than that', () => {
    assert.equal(silenceBudgetMs({ leaseMs: 30_000, pingIntervalMs: 10_000 }), 30_000);
    assert.equal(silenceBudgetMs({ leaseMs: 30_000, pingIntervalMs: 20_000 }), 40_000);
  });
});

describe('agents/link/liveness - against a scripted relay', () => {
  let silent: ScriptedRelay;
  let pinging: ScriptedRelay;
  const pingTimers: NodeJS.Timeout[] = [];
  before(async () => {
    silent = await startScriptedRelay(pki, (peer) => peer.send(welcomeFrame('press-7', LEASE_MS)));
    pinging = await startScriptedRelay(pki, (peer) => {
      peer.send(welcomeFrame('press-7', LEASE_MS));
      let nonce = 0;
      // As the real relay does: three pings per lease.
      pingTimers.push(setInterval(() => peer.send({ type: 'ping', nonce: ++nonce }), LEASE_MS / 3));
    });
  });
  after(async () => {
    for (const timer of pingTimers) clearInterval(timer);
    await Promise.all([silent.close(), pinging.close()]);
  });

  it('gives up a relay that sends nothing after its welcome: closed with AGENT_ERR_RELAY_SILENT after about a lease', async () => {
    const { link, closed } = await watchedLink(silent.url);
    const welcomedAt = performance.now();
    const pending = link.subscribe(1, 'press-7/#').then(
      () => assert.fail('the subscribe was answered'),
      (error: unknown) => error,
    );
    const ended = await waitFor(closed, 'the link to give the relay up', LEASE_MS + LATE_MS);
    assert.deepEqual([ended.code, ended.reason], [1006, 'AGENT_ERR_RELAY_SILENT']);
    const after = ended.at - welcomedAt;
    assert.ok(after >= LEASE_MS - 5, `gave up after ${after.toFixed(0)} ms, before the lease ran out`);
    assert.equal(link.closed, true);
    const error = await pending;
    assert.ok(error instanceof DmzError && error.code === 'AGENT_ERR_RELAY_SILENT', String(error));
  });

  it('keeps a relay that pings three times a lease, for several leases, and gives it up once it stops', async () => {
    const { link, closed } = await watchedLink(pinging.url);
    await expectNever(closed, 'the link giving up a relay that pings', 4 * LEASE_MS);
    assert.equal(link.closed, false);
    for (const timer of pingTimers) clearInterval(timer);
    const stoppedAt = performance.now();
    const ended = await waitFor(closed, 'the link to give the relay up', LEASE_MS + LATE_MS);
    assert.equal(ended.reason, 'AGENT_ERR_RELAY_SILENT');
    // The last ping came up to a third of a lease before the pings stopped.
    const after = ended.at - stoppedAt;
    assert.ok(after >= (2 * LEASE_MS) / 3 - 5, `gave up ${after.toFixed(0)} ms after the last ping`);
  });
});

describe('agents/link/liveness - against a real relay behind a black hole', () => {
  const RELAY_LEASE_MS = 1_000;
  let t: TestRelay;
  let proxy: BlackHoleProxy;
  before(async () => {
    t = await startTestRelay(pki, { sessions: { leaseMs: RELAY_LEASE_MS } });
    proxy = await startBlackHoleProxy(t.relay.agentPort);
  });
  after(async () => {
    await proxy.close();
    await t.stop();
  });

  it('keeps a live relay past its lease, then gives it up within about a lease of the route going dark', async () => {
    const { link, closed } = await watchedLink(`wss://127.0.0.1:${proxy.port}/v1/agent`);
    assert.equal(link.welcome.leaseMs, RELAY_LEASE_MS);
    // The relay's pings keep it: more than one lease with nothing from us but pongs.
    await expectNever(closed, 'the link giving up a live relay', 2 * RELAY_LEASE_MS);
    proxy.silence();
    const silencedAt = performance.now();
    const ended = await waitFor(closed, 'the link to give the relay up', RELAY_LEASE_MS + LATE_MS);
    assert.deepEqual([ended.code, ended.reason], [1006, 'AGENT_ERR_RELAY_SILENT']);
    // The relay pings every third of a lease on a tick of a sixth: its last ping before the route
    // went dark came at most half a lease earlier.
    const after = ended.at - silencedAt;
    assert.ok(after >= RELAY_LEASE_MS / 2 - 5, `gave up ${after.toFixed(0)} ms after the route went dark`);
  });
});

/**
 * Clients that hold connections open by sending almost nothing (slowloris), against the enrollment
 * port, which anyone can reach: every request completes within its deadline or is cut, open
 * connections are bounded overall and per address, and nothing the relay must do on time
 * (revocation, shutdown) waits for such a client.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { createCertificateSigningRequest } from '../../../pki/csr.ts';
import { AGENT_KEY_BITS, generateRsaKeyPair } from '../../../pki/keys.ts';
import { openState } from '../../../pki/state.ts';
import { openPkiStore, type PkiStore } from '../../../pki/store.ts';
import { CLOSE_CODE } from '../../../relay/protocol/close-codes.ts';
import { createAuditLog } from '../../../relay/server/audit.ts';
import { PkiUpkeep } from '../../../relay/server/pki-upkeep.ts';
import type { RunningRelay } from '../../../relay/server/relay.ts';
import { createCaState, enrollInProcess, startCaStateRelay } from '../../support/ca-state.ts';
import {
  createEnrollmentFixture,
  postToEnrollment,
  type EnrollmentFixture,
} from '../../support/enrollment-fixture.ts';
import { AuditRecorder, connectRecordingAgent } from '../../support/relay-harness.ts';
import { startSlowClient, type SlowClient } from '../../support/slow-client.ts';
import { waitFor } from '../../support/wait.ts';

/** The request deadline these tests configure (the TLS handshake timeout). */
const DEADLINE_MS = 1_000;
/** A dribble far slower than any honest client, far faster than the deadline. */
const DRIBBLE_MS = 200;
/** The cut is due at the deadline; a loaded machine may add a little. */
const CUT_BOUND_MS = DEADLINE_MS + 1_500;
/** Slow clients give up by themselves after this: no test leaves one behind. */
const CLIENT_MAX_MS = 20_000;
const HOUR_MS = 3_600_000;

describe('relay/server slow clients on the enrollment port', () => {
  let fixture: EnrollmentFixture;
  const clients: SlowClient[] = [];
  const slow = (port: number, dribble: 'headers' | 'body', localAddress?: string): SlowClient => {
    const client = startSlowClient({
      port,
      dribble,
      intervalMs: DRIBBLE_MS,
      maxMs: CLIENT_MAX_MS,
      ...(localAddress === undefined ? {} : { localAddress }),
    });
    clients.push(client);
    return client;
  };

  before(async () => {
    fixture = await createEnrollmentFixture();
  });
  after(async () => {
    for (const client of clients) client.stop();
    await fixture.close();
  });

  for (const dribble of ['headers', 'body'] as const) {
    it(`enrollment - ${dribble} dribbled one byte at a time: cut at the request deadline`, async () => {
      const { port } = await fixture.listen({ handshakeTimeoutMs: DEADLINE_MS });
      const client = slow(port, dribble);
      assert.equal(await client.established, true);
      const start = Date.now();
      const closedAt = await waitFor(
        () => (client.isOpen() ? undefined : client.closed),
        'the cut',
        CUT_BOUND_MS,
      );
      assert.ok(
        closedAt - start >= DEADLINE_MS - 300,
        `cut after ${closedAt - start} ms, before the deadline`,
      );
    });
  }

  it('enrollment - one address holds at most connectionsPerAddress connections; others still enroll', async () => {
    const listener = await fixture.listen({ limits: { connections: 100, connectionsPerAddress: 3 } });
    const held = [1, 2, 3].map(() => slow(listener.port, 'body', '127.0.0.2'));
    assert.deepEqual(await Promise.all(held.map((client) => client.established)), [true, true, true]);
    const fourth = slow(listener.port, 'body', '127.0.0.2');
    assert.equal(await fourth.established, false, 'a fourth connection from one address got a TLS handshake');
    const refused = await listener.audit.waitFor(
      (entry) => entry.event === 'enrollment.refused' && entry['address'] === '127.0.0.2',
      'the refusal, with its address',
    );
    assert.equal(refused['code'], 'PKI_ERR_RATE_LIMITED');
    assert.match(String(refused['reason']), /per-address limit on open connections/);

    const { token } = await fixture.createToken({ name: 'press-8' });
    const keys = await generateRsaKeyPair(AGENT_KEY_BITS);
    const csr = createCertificateSigningRequest({ ...keys, commonName: 'press-8' });
    const answer = await postToEnrollment(listener.port, fixture.tls.caPem, { token, csr });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
  });

  it('enrollment - the port holds at most `connections` connections in all', async () => {
    const listener = await fixture.listen({ limits: { connections: 3, connectionsPerAddress: 3 } });
    const held = ['127.0.0.3', '127.0.0.4', '127.0.0.5'].map((source) => slow(listener.port, 'body', source));
    assert.deepEqual(await Promise.all(held.map((client) => client.established)), [true, true, true]);
    assert.equal(await slow(listener.port, 'body', '127.0.0.6').established, false);
    await listener.audit.waitFor(
      (entry) =>
        entry.event === 'enrollment.refused' &&
        entry['address'] === '127.0.0.6' &&
        /at its limit/.test(String(entry['reason'])),
      'the refusal of the fourth',
    );
  });
});

describe('relay/server slow clients cannot stall revocation or shutdown', () => {
  let root: string;
  let stateDir: string;
  let store: PkiStore;
  const clients: SlowClient[] = [];

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'dmz-slow-clients-'));
    stateDir = join(root, 'state');
    await createCaState(stateDir);
    store = openPkiStore(stateDir);
  });
  after(async () => {
    for (const client of clients) client.stop();
    store.close();
    await rm(root, { recursive: true, force: true });
  });

  /** A relay on the CA state, with the default request deadline (10 s): slower than these tests. */
  const start = async (mode: 'auto' | 'on'): Promise<RunningRelay> =>
    (await startCaStateRelay(stateDir, { enrollment: mode })).relay;

  function recordToken(): string {
    const jti = randomBytes(16).toString('base64url');
    store.recordToken({
      jti,
      name: 'spare',
      role: 'ot',
      createdAt: new Date(),
      expiresAt: new Date(Date.now() + HOUR_MS),
    });
    return jti;
  }

  it('upkeep - a body dribbled while the last token is revoked: the port closes, and a revocation still cuts within 1 s', async () => {
    const victim = await enrollInProcess(stateDir, 'it', 'victim');
    const relay = await start('auto');
    try {
      const agent = await connectRecordingAgent({
        url: `wss://127.0.0.1:${relay.agentPort}/v1/agent`,
        ...victim,
        connectTimeoutMs: 3_000,
      });
      const jti = recordToken();
      const port = await waitFor(() => relay.enrollmentPort, 'enrollment port open', 3_000);
      const attacker = startSlowClient({ port, dribble: 'body', intervalMs: 500, maxMs: CLIENT_MAX_MS });
      clients.push(attacker);
      assert.equal(await attacker.inRequest, true);
      // No token outstanding: upkeep closes the enrollment port while the attacker dribbles on.
      store.revokeToken(jti);
      await waitFor(() => relay.enrollmentPort === undefined, 'enrollment port closed', 3_000);
      await waitFor(() => !attacker.isOpen(), 'the attacker cut as the port closed', 3_000);

      const revokedAt = Date.now();
      assert.equal(store.revokeCertificates('victim', 'keyCompromise', new Date()).length, 1);
      const closed = await agent.waitClosed(2_000);
      const elapsed = Date.now() - revokedAt;
      assert.ok(elapsed < 1_000, `cut ${elapsed} ms after the revocation`);
      assert.deepEqual(closed, { code: CLOSE_CODE.policyViolation, reason: 'RELAY_ERR_REVOKED' });
    } finally {
      await relay.close();
    }
  });

  it('upkeep - an enrollment port that never finishes closing does not delay revocation', async () => {
    await enrollInProcess(stateDir, 'ot', 'stalled-victim');
    const state = await openState(stateDir);
    const published: ReadonlySet<string>[] = [];
    let closing = false;
    const upkeep = new PkiUpkeep({
      state,
      ca: await state.loadCa(),
      crlValidityMs: HOUR_MS,
      onCrl: (_crl, serials) => published.push(serials),
      enrollment: {
        mode: 'auto',
        open: () => Promise.resolve(),
        // A close held up by a client, forever.
        close: () => {
          closing = true;
          return new Promise<void>(() => undefined);
        },
      },
      audit: createAuditLog(new AuditRecorder().stream),
      log: pino({ level: 'silent' }),
    });
    const jti = recordToken();
    try {
      await upkeep.start();
      await waitFor(() => upkeep.enrollmentOpen, 'enrollment opened', 3_000);
      store.revokeToken(jti);
      await waitFor(() => closing, 'enrollment closing', 3_000);
      const [revoked] = store.revokeCertificates('stalled-victim', 'keyCompromise', new Date());
      assert.ok(revoked !== undefined);
      const crl = await waitFor(
        () => published.find((serials) => serials.has(revoked.serialHex)),
        'the CRL',
        1_000,
      );
      assert.ok(crl.size >= 1);
    } finally {
      // Stops the timers at once; the close it then awaits never ends, by design of this test.
      void upkeep.stop();
      state.close();
    }
  });

  it('relay - close() returns within the drain bound while a client dribbles its body', async () => {
    const relay = await start('on');
    const port = relay.enrollmentPort;
    assert.ok(port !== undefined);
    const attacker = startSlowClient({ port, dribble: 'body', intervalMs: 500, maxMs: CLIENT_MAX_MS });
    clients.push(attacker);
    assert.equal(await attacker.inRequest, true);
    const started = Date.now();
    await relay.close();
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 3_000, `close took ${elapsed} ms`);
    await waitFor(() => !attacker.isOpen(), 'the attacker cut', 1_000);
  });
});

/**
 * The relay's CA upkeep while it runs on a real state directory: the enrollment port in `auto`
 * mode follows outstanding tokens, a CRL near or past its end is reissued at start, and a
 * revocation made by another store connection (as `dmz-pki revoke` makes it) cuts the agent.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as connectTls } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { CLOSE_CODE } from '../../../relay/protocol/close-codes.ts';
import { crlNeedsReissue, writeCrl } from '../../../pki/revocation.ts';
import { statePath } from '../../../pki/state-layout.ts';
import { openState } from '../../../pki/state.ts';
import { openPkiStore, type PkiStore } from '../../../pki/store.ts';
import { AUDIT_EVENT, createAuditLog } from '../../../relay/server/audit.ts';
import { validateRelayConfig } from '../../../relay/server/config.ts';
import { PkiUpkeep } from '../../../relay/server/pki-upkeep.ts';
import { openRelayPki } from '../../../relay/server/relay-pki.ts';
import type { RunningRelay } from '../../../relay/server/relay.ts';
import {
  CA_STATE_TRUST_DOMAIN,
  createCaState,
  enrollInProcess,
  startCaStateRelay,
  type EnrolledAgent,
} from '../../support/ca-state.ts';
import { tcpConnectOutcome } from '../../support/ports.ts';
import { AuditRecorder, connectRecordingAgent, type RecordingAgent } from '../../support/relay-harness.ts';
import { runOpenssl } from '../../support/test-pki.ts';
import { expectNever, waitFor } from '../../support/wait.ts';

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
/** Upkeep looks at outstanding tokens once a second; two seconds leave room for a busy machine. */
const ENROLLMENT_SWITCH_BOUND_MS = 2_000;
/** Long enough that upkeep has looked at the tokens at least once while we watch. */
const ENROLLMENT_QUIET_MS = 1_500;

async function withStateDir(): Promise<{ root: string; stateDir: string }> {
  const root = await mkdtemp(join(tmpdir(), 'dmz-upkeep-test-'));
  const stateDir = join(root, 'state');
  await createCaState(stateDir);
  return { root, stateDir };
}

const startOnState = startCaStateRelay;

const connectAgent = (relay: RunningRelay, agent: EnrolledAgent): Promise<RecordingAgent> =>
  connectRecordingAgent({
    url: `wss://127.0.0.1:${relay.agentPort}/v1/agent`,
    certPem: agent.certPem,
    keyPem: agent.keyPem,
    caPem: agent.caPem,
    connectTimeoutMs: 3_000,
  });

/** Records a token in the store as `dmz-pki token create` does; returns its jti. */
function recordToken(store: PkiStore, expiresAt: Date): string {
  const jti = randomBytes(16).toString('base64url');
  store.recordToken({ jti, name: 'press-9', role: 'ot', createdAt: new Date(), expiresAt });
  return jti;
}

/** Completes a TLS handshake with the enrollment port, checking its certificate against the CA. */
function tlsHandshake(port: number, caPem: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = connectTls({ host: '127.0.0.1', port, ca: caPem }, () => {
      const authorized = socket.authorized;
      socket.destroy();
      resolve(authorized);
    });
    socket.once('error', reject);
  });
}

/** thisUpdate and nextUpdate of the CRL in the state directory, as OpenSSL reads them. */
async function crlDates(stateDir: string): Promise<{ thisUpdate: Date; nextUpdate: Date }> {
  const { exitCode, stdout, stderr } = await runOpenssl([
    'crl',
    '-in',
    statePath(stateDir, 'crl'),
    '-noout',
    '-lastupdate',
    '-nextupdate',
  ]);
  assert.equal(exitCode, 0, stderr);
  const field = (name: string): Date => {
    const value = new RegExp(`^${name}=(.+)$`, 'm').exec(stdout)?.[1];
    assert.ok(value !== undefined, `${name} in ${stdout}`);
    return new Date(value);
  };
  return { thisUpdate: field('lastUpdate'), nextUpdate: field('nextUpdate') };
}

/** Writes the CRL as if signed `ageMs` ago, valid for `validityMs` from then. */
async function ageCrl(stateDir: string, ageMs: number, validityMs: number): Promise<void> {
  const state = await openState(stateDir);
  try {
    const ca = await state.loadCa();
    await writeCrl({ stateDir, store: state.store, ca, now: new Date(Date.now() - ageMs), validityMs });
    assert.ok(crlNeedsReissue(state.store, new Date(), validityMs), 'precondition: the CRL is due');
  } finally {
    state.close();
  }
}

const near = (actual: Date, expected: number, toleranceMs: number, what: string) =>
  assert.ok(
    Math.abs(actual.getTime() - expected) <= toleranceMs,
    `${what}: ${actual.toISOString()}, expected about ${new Date(expected).toISOString()}`,
  );

describe('relay/server pki upkeep - enrollment port', () => {
  let root: string;
  let stateDir: string;
  let caPem: string;
  let store: PkiStore;

  before(async () => {
    ({ root, stateDir } = await withStateDir());
    store = openPkiStore(stateDir);
    const state = await openState(stateDir);
    caPem = state.caCertPem;
    state.close();
  });
  after(async () => {
    store.close();
    await rm(root, { recursive: true, force: true });
  });

  it('upkeep - auto: the port opens while a token is outstanding and closes when it is revoked', async () => {
    const { relay } = await startOnState(stateDir, { enrollment: 'auto' });
    try {
      // Spent tokens keep it shut: one expired, one revoked before the relay could see it.
      recordToken(store, new Date(Date.now() - MINUTE_MS));
      store.revokeToken(recordToken(store, new Date(Date.now() + HOUR_MS)));
      await expectNever(() => relay.enrollmentPort, 'enrollment port open', ENROLLMENT_QUIET_MS);

      const jti = recordToken(store, new Date(Date.now() + HOUR_MS));
      const port = await waitFor(
        () => relay.enrollmentPort,
        'enrollment port open',
        ENROLLMENT_SWITCH_BOUND_MS,
      );
      assert.equal(await tlsHandshake(port, caPem), true, 'enrollment TLS verifies against the CA');

      store.revokeToken(jti);
      await waitFor(
        () => relay.enrollmentPort === undefined,
        'enrollment port closed',
        ENROLLMENT_SWITCH_BOUND_MS,
      );
      assert.equal(await tcpConnectOutcome('127.0.0.1', port), 'ECONNREFUSED');
    } finally {
      await relay.close();
    }
  });

  it('upkeep - auto: when the port cannot open (EADDRINUSE), the next check tries again', async () => {
    const jti = recordToken(store, new Date(Date.now() + HOUR_MS));
    const state = await openState(stateDir);
    const calls: string[] = [];
    const upkeep = new PkiUpkeep({
      state,
      ca: await state.loadCa(),
      crlValidityMs: HOUR_MS,
      onCrl: () => undefined,
      enrollment: {
        mode: 'auto',
        open() {
          calls.push('open');
          if (calls.length > 1) return Promise.resolve();
          const taken = Object.assign(new Error('listen EADDRINUSE: address already in use'), {
            code: 'EADDRINUSE',
          });
          return Promise.reject(taken);
        },
        close() {
          calls.push('close');
          return Promise.resolve();
        },
      },
      audit: createAuditLog(new AuditRecorder().stream),
      log: pino({ level: 'silent' }),
    });
    try {
      await upkeep.start();
      // One failed open, then the retry a check later: two checks' worth plus room.
      await waitFor(() => calls.length >= 2, 'enrollment port opened again', 2 * ENROLLMENT_SWITCH_BOUND_MS);
      await upkeep.stop();
      assert.deepEqual(calls, ['open', 'open', 'close']);
    } finally {
      await upkeep.stop();
      state.close();
      store.revokeToken(jti);
    }
  });

  it('upkeep - off: the port never opens, even with a token outstanding', async () => {
    const jti = recordToken(store, new Date(Date.now() + HOUR_MS));
    const { relay } = await startOnState(stateDir, { enrollment: 'off' });
    try {
      await expectNever(() => relay.enrollmentPort, 'enrollment port open', ENROLLMENT_QUIET_MS);
    } finally {
      await relay.close();
      store.revokeToken(jti);
    }
  });
});

describe('relay/server pki upkeep - CRL', () => {
  let root: string;
  let stateDir: string;
  let agent: EnrolledAgent;

  before(async () => {
    ({ root, stateDir } = await withStateDir());
    agent = await enrollInProcess(stateDir, 'it', 'historian');
  });
  after(() => rm(root, { recursive: true, force: true }));

  const stale = [
    { name: 'past half its validity (31 min of 1 h)', ageMs: 31 * MINUTE_MS },
    { name: 'already expired (2 h old, valid 1 h)', ageMs: 2 * HOUR_MS },
  ];
  for (const row of stale) {
    it(`upkeep - a CRL ${row.name} is reissued at start, and agents still connect`, async () => {
      await ageCrl(stateDir, row.ageMs, HOUR_MS);
      const before = await crlDates(stateDir);
      near(before.thisUpdate, Date.now() - row.ageMs, MINUTE_MS, 'aged thisUpdate');

      const { relay, audit } = await startOnState(stateDir, { crlValidity: '1h' });
      try {
        const started = Date.now();
        const after = await crlDates(stateDir);
        near(after.thisUpdate, started, MINUTE_MS, 'reissued thisUpdate');
        assert.equal(after.nextUpdate.getTime() - after.thisUpdate.getTime(), HOUR_MS);
        // Recorded in the relay's audit log too, once, with the CRL's nextUpdate (the file's is in seconds).
        const reissued = audit.entries.filter((entry) => entry.event === 'crl.reissued');
        assert.deepEqual(
          reissued.map((entry) => entry['reason']),
          ['start'],
        );
        near(
          new Date(String(reissued[0]?.['nextUpdate'])),
          after.nextUpdate.getTime(),
          1_000,
          'recorded nextUpdate',
        );
        const client = await connectAgent(relay, agent);
        assert.equal(client.client.welcome.name, 'historian');
        await client.client.close();
      } finally {
        await relay.close();
      }
    });
  }

  it('upkeep - a reissued CRL is recorded before its file is replaced, so no kill leaves it unrecorded', async () => {
    const state = await openState(stateDir);
    const crlPath = statePath(stateDir, 'crl');
    const old = readFileSync(crlPath, 'utf8');
    const onDiskAtRecord: string[] = [];
    const upkeep = new PkiUpkeep({
      state,
      ca: await state.loadCa(),
      crlValidityMs: HOUR_MS,
      onCrl: () => undefined,
      enrollment: undefined,
      audit: {
        record(event) {
          if (event === AUDIT_EVENT.crlReissued) onDiskAtRecord.push(readFileSync(crlPath, 'utf8'));
        },
      },
      log: pino({ level: 'silent' }),
    });
    try {
      await upkeep.publishCrl('freshness');
      assert.deepEqual(onDiskAtRecord, [old], 'one record, made while the old CRL was still in place');
      assert.notEqual(readFileSync(crlPath, 'utf8'), old, 'then the CRL was replaced');
    } finally {
      state.close();
    }
  });

  it('upkeep - a revocation by another store connection cuts the agent within 1 s and reissues the CRL', async () => {
    const { relay, audit } = await startOnState(stateDir);
    try {
      const client = await connectAgent(relay, agent);
      const cli = openPkiStore(stateDir);
      const started = Date.now();
      try {
        assert.equal(cli.revokeCertificates('historian', 'keyCompromise', new Date()).length, 1);
      } finally {
        cli.close();
      }
      const closed = await client.waitClosed(1_000);
      const elapsed = Date.now() - started;
      assert.ok(elapsed < 1_000, `cut after ${elapsed} ms`);
      assert.deepEqual(closed, { code: CLOSE_CODE.policyViolation, reason: 'RELAY_ERR_REVOKED' });

      const reissued = await audit.waitFor(
        (entry) => entry.event === 'crl.reissued' && entry['reason'] === 'revocation',
        'crl.reissued for the revocation',
      );
      assert.equal(reissued['revoked'], 1);
      const revoked = await audit.waitFor(
        (entry) => entry.event === 'certificate.revoked',
        'certificate.revoked',
      );
      assert.equal(revoked['disconnected'], 1);
      // The reissued CRL is in force for new handshakes too.
      await assert.rejects(connectAgent(relay, agent));
    } finally {
      await relay.close();
    }
  });
});

describe('relay/server relay-pki - renewal rate limit', () => {
  let root: string;
  let stateDir: string;

  before(async () => {
    ({ root, stateDir } = await withStateDir());
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('relay-pki - an agent gets 6 renewal attempts per window, then RELAY_ERR_RATE_LIMITED before the CA is asked; others are unaffected', async () => {
    const [flooder, bystander] = await Promise.all([
      enrollInProcess(stateDir, 'ot', 'press-1'),
      enrollInProcess(stateDir, 'ot', 'press-2'),
    ]);
    const pki = await openRelayPki(
      validateRelayConfig(
        {
          trustDomain: CA_STATE_TRUST_DOMAIN,
          state: stateDir,
          listen: { agents: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
          log: { level: 'silent' },
          policy: [{ role: 'ot' }],
        },
        stateDir,
      ),
      createAuditLog(new AuditRecorder().stream),
    );
    const renew = (name: string, serialHex: string) =>
      pki.renewer.renew({ trustDomain: CA_STATE_TRUST_DOMAIN, role: 'ot', name }, serialHex, 'not a csr');
    try {
      // Fresh certificates: the CA refuses each attempt as too early, yet each one counts.
      for (let attempt = 0; attempt < 6; attempt += 1) {
        await assert.rejects(renew('press-1', flooder.serialHex), { code: 'PKI_ERR_RENEWAL_REFUSED' });
      }
      await assert.rejects(renew('press-1', flooder.serialHex), { code: 'RELAY_ERR_RATE_LIMITED' });
      await assert.rejects(renew('press-2', bystander.serialHex), { code: 'PKI_ERR_RENEWAL_REFUSED' });
    } finally {
      pki.state.close();
    }
  });
});

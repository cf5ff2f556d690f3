/**
 * An agent's whole life with the relay's CA, as an operator and an agent live it: init, token,
 * enroll, connect, renew, revoke. The CLI commands run as real processes beside a real relay.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { loadCredentials, type AgentCredentialSet } from '../../agents/credentials.ts';
import { enrollAgent } from '../../agents/enroll.ts';
import { RelayLink } from '../../agents/link/relay-link.ts';
import { renewOverConnection, scheduleRenewal } from '../../agents/renewal.ts';
import { normalizeSerialHex } from '../../pki/serial.ts';
import { initializeState } from '../../pki/state.ts';
import { createAuditLog } from '../../relay/server/audit.ts';
import { validateRelayConfig } from '../../relay/server/config.ts';
import { startRelay, type RunningRelay } from '../../relay/server/relay.ts';
import { AuditRecorder } from '../support/relay-harness.ts';
import { waitFor } from '../support/wait.ts';

const execFileAsync = promisify(execFile);
const PKI_BIN = join(import.meta.dirname, '..', '..', 'bin', 'dmz-pki.js');

describe('pki - lifecycle: init, token, enroll, connect, renew, revoke', () => {
  let dir: string;
  let state: string;
  let relay: RunningRelay;
  const audit = new AuditRecorder();
  const pki = async (...args: string[]) =>
    (await execFileAsync(process.execPath, [PKI_BIN, '--state', state, ...args], { encoding: 'utf8' }))
      .stdout;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dmz-lifecycle-'));
    state = join(dir, 'state');
    await initializeState({
      stateDir: state,
      trustDomain: 'plant.example',
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1'],
      enrollmentUrls: [],
      caKeyBits: 2048,
    });
    const config = validateRelayConfig(
      {
        trustDomain: 'plant.example',
        state,
        listen: {
          agents: { host: '127.0.0.1', port: 0 },
          admin: { host: '127.0.0.1', port: 0 },
          enrollment: { host: '127.0.0.1', port: 0, mode: 'on' },
        },
        pki: { agentCertificateLifetime: '1m' },
        log: { level: 'silent' },
        policy: [{ role: 'ot' }, { role: 'it', subscribe: ['#'] }],
      },
      dir,
    );
    relay = await startRelay({ config, audit: createAuditLog(audit.stream), log: pino({ level: 'silent' }) });
  });
  after(async () => {
    await relay.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function enroll(name: string, role: 'ot' | 'it'): Promise<AgentCredentialSet> {
    const url = `https://127.0.0.1:${relay.enrollmentPort}`;
    const token = (await pki('token', 'create', '--name', name, '--role', role, '--url', url)).trim();
    const agentDir = join(dir, 'agents', name);
    await enrollAgent({ token, dir: agentDir });
    return loadCredentials(agentDir);
  }

  const connect = (credentials: Pick<AgentCredentialSet, 'certPem' | 'keyPem' | 'caPem'>) =>
    RelayLink.connect({
      url: `wss://127.0.0.1:${relay.agentPort}/v1/agent`,
      certPem: credentials.certPem,
      keyPem: credentials.keyPem,
      caPem: credentials.caPem,
      connectTimeoutMs: 3000,
    });

  it('enrolls with a one-time token, connects, renews with a fresh key, and is cut within a second of revocation', async (t) => {
    const credentials = await enroll('historian', 'it');
    assert.equal(credentials.identity.spiffeId, 'spiffe://plant.example/agent/it/historian');
    const client = await connect(credentials);
    assert.equal(client.welcome.name, 'historian');

    // Renewal over the live connection: a new key, a new serial, the same identity, the same CA.
    const renewed = await renewOverConnection(client, 'historian', credentials.caPem);
    const before = new X509Certificate(credentials.certPem);
    const after = new X509Certificate(renewed.certPem);
    assert.notEqual(after.serialNumber, before.serialNumber);
    assert.equal(after.subjectAltName, before.subjectAltName);
    assert.ok(!after.publicKey.equals(before.publicKey));
    await audit.waitFor((entry) => entry.event === 'certificate.renewed', 'renewal audited');
    const agents = JSON.parse(await pki('agents', '--json')) as {
      serial: string;
      replacedBy: string | null;
    }[];
    assert.ok(
      agents.some((agent) => agent.replacedBy === after.serialNumber.toLowerCase().replace(/^0+/, '')),
    );

    // The renewed certificate works on its own connection.
    const second = await connect({ ...renewed });
    await client.close();

    // Revocation by name, from the CLI in another process: the live connection goes within 1 s
    // of the revocation being committed (the CLI's own start-up is not the relay's to answer for).
    const revoking = pki('revoke', 'historian', '--reason', 'test');
    await waitFor(() => second.closed, 'revoked connection closed', 10_000, 5);
    const closedAt = Date.now();
    await revoking;
    const records = JSON.parse(await pki('agents', '--json')) as { name: string; revokedAt: string | null }[];
    const revokedAt = Math.max(
      ...records.filter((r) => r.name === 'historian').map((r) => Date.parse(r.revokedAt ?? '')),
    );
    const elapsed = closedAt - revokedAt;
    assert.ok(elapsed >= 0 && elapsed < 1000, `cut ${elapsed} ms after the revocation was committed`);
    t.diagnostic(`revocation committed to live connection closed: ${elapsed} ms`);
    const revokedEntry = await audit.waitFor(
      (entry) => entry.event === 'certificate.revoked',
      'revocation audited',
    );
    // Both of the historian's certificates, the original and its renewal, each named once.
    const serialOf = (pem: string) => normalizeSerialHex(new X509Certificate(pem).serialNumber);
    assert.deepEqual(
      [...(revokedEntry['serials'] as string[])].sort(),
      [serialOf(credentials.certPem), serialOf(renewed.certPem)].sort(),
    );
    assert.equal(revokedEntry['disconnected'], 1);

    // Both certificates are refused at the next handshake.
    await assert.rejects(connect({ ...renewed }));
    await assert.rejects(connect(credentials));
    const refusal = await audit.waitFor(
      (entry) => entry.event === 'agent.refused' && entry['detail'] === 'CERT_REVOKED',
      'handshake refusal audited as revoked',
    );
    assert.equal(refusal['reason'], 'tls');
  });

  it('renews automatically when due, stores the new credentials, and they connect', async () => {
    const credentials = await enroll('scada-1', 'it');
    const client = await connect(credentials);
    const agentDir = join(dir, 'agents', 'scada-1');
    // Certificates live a minute here (plus the minute they are backdated for clock skew), so the
    // relay takes a renewal at once; the agent's clock is moved on past its own due time.
    const renewed = await new Promise<AgentCredentialSet>((resolve, reject) => {
      scheduleRenewal({
        client,
        dir: agentDir,
        credentials,
        now: () => Date.now() + 30_000,
        onRenewed: resolve,
        onError: reject,
      });
    });
    assert.notEqual(renewed.identity.serial, credentials.identity.serial);
    assert.deepEqual((await loadCredentials(agentDir)).identity, renewed.identity);
    await client.close();
    const again = await connect(await loadCredentials(agentDir));
    assert.equal(again.welcome.name, 'scada-1');
    await again.close();
  });

  it('refuses a second enrollment with a used token', async () => {
    const url = `https://127.0.0.1:${relay.enrollmentPort}`;
    const token = (await pki('token', 'create', '--name', 'press-7', '--role', 'ot', '--url', url)).trim();
    await enrollAgent({ token, dir: join(dir, 'agents', 'press-7') });
    await assert.rejects(enrollAgent({ token, dir: join(dir, 'agents', 'press-7-again') }), {
      code: 'PKI_ERR_TOKEN_USED',
    });
  });
});

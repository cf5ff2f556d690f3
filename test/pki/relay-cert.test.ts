/**
 * `dmz-pki relay-cert` beside a running relay on its own CA: the server certificate is reissued
 * for new names, the relay loads it within its revocation poll, agents connected before it stay
 * connected and working, and every new handshake (agent port and enrollment port) is served the
 * new certificate, which a client checking the new name accepts. `status` warns within 30 days.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type ConnectionOptions, type PeerCertificate } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { loadCredentials } from '../../agents/credentials.ts';
import { enrollAgent } from '../../agents/enroll.ts';
import { RelayLink } from '../../agents/link/relay-link.ts';
import { runPkiCli } from '../../pki/cli.ts';
import { expiryWarnings } from '../../pki/expiry-warnings.ts';
import { DAY_MS } from '../../pki/lifetimes.ts';
import { readRelayCertificate } from '../../pki/relay-certificate.ts';
import { normalizeSerialHex } from '../../pki/serial.ts';
import { statePath } from '../../pki/state-layout.ts';
import { generateRsaKeyPair } from '../../pki/keys.ts';
import type { RunningRelay } from '../../relay/server/relay.ts';
import {
  createCaState,
  enrollInProcess,
  startCaStateRelay,
  type EnrolledAgent,
} from '../support/ca-state.ts';
import type { AuditRecorder } from '../support/relay-harness.ts';

const NEW_NAME = 'relay.plant.test';

/** dmz-pki in this process, output captured. */
async function pki(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runPkiCli(
    args,
    {},
    {
      stdout: (text) => void (stdout += typeof text === 'string' ? text : Buffer.from(text).toString()),
      stderr: (text) => void (stderr += text),
    },
  );
  return { code, stdout, stderr };
}

/** The certificate the server at 127.0.0.1:`port` presents, verified against `ca` for `servername`. */
function presentedCertificate(port: number, options: ConnectionOptions): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ...options }, () => {
      const certificate = socket.getPeerCertificate();
      socket.destroy();
      resolve(certificate);
    });
    socket.on('error', reject);
  });
}

describe('dmz-pki relay-cert - reissue under a running relay', () => {
  let dir: string;
  let state: string;
  let relay: RunningRelay;
  let audit: AuditRecorder;
  let ot: EnrolledAgent;
  let it_: EnrolledAgent;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dmz-relay-cert-'));
    state = join(dir, 'state');
    await createCaState(state);
    [ot, it_] = await Promise.all([
      enrollInProcess(state, 'ot', 'press-1'),
      enrollInProcess(state, 'it', 'historian'),
    ]);
    ({ relay, audit } = await startCaStateRelay(state, { enrollment: 'on' }));
  });
  after(async () => {
    await relay.close();
    await rm(dir, { recursive: true, force: true });
  });

  const connectAgent = (agent: Pick<EnrolledAgent, 'certPem' | 'keyPem' | 'caPem'>) =>
    RelayLink.connect({
      url: `wss://127.0.0.1:${relay.agentPort}/v1/agent`,
      certPem: agent.certPem,
      keyPem: agent.keyPem,
      caPem: agent.caPem,
      connectTimeoutMs: 5000,
    });
  // As an agent given the relay's new DNS name checks it (the TCP target stays loopback).
  const agentPortCertificate = () =>
    presentedCertificate(relay.agentPort, {
      servername: NEW_NAME,
      ca: ot.caPem,
      cert: ot.certPem,
      key: ot.keyPem,
    });

  it('keeps connected agents, and serves new handshakes the new names', async () => {
    const otLink = await connectAgent(ot);
    const itLink = await connectAgent(it_);
    const before = await pki(['--state', state, 'status', '--json']);
    assert.equal(before.code, 0, before.stderr);
    assert.deepEqual((JSON.parse(before.stdout) as { warnings: unknown[] }).warnings, []);
    // The name is not the relay's yet: a client checking it refuses the certificate.
    await assert.rejects(agentPortCertificate(), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' });

    const reissued = await pki([
      '--state',
      state,
      'relay-cert',
      '--dns',
      NEW_NAME,
      '--ip',
      '127.0.0.1',
      '--days',
      '20',
      '--json',
    ]);
    assert.equal(reissued.code, 0, reissued.stderr);
    // localhost was the relay's name: said, since agents that use it now refuse the relay.
    assert.match(reissued.stderr, /no longer answers to "localhost": agents that reach the relay by it/);
    const { serial } = JSON.parse(reissued.stdout) as { serial: string };
    const reload = await audit.waitFor(
      (entry) => entry.event === 'tls.server_certificate_reloaded',
      'the relay loaded the reissued certificate',
    );
    assert.equal(reload['serial'], serial);
    const refusalsBefore = audit.entries.filter((entry) => entry.event === 'agent.refused').length;

    const served = await agentPortCertificate();
    assert.equal(normalizeSerialHex(served.serialNumber), serial);
    assert.match(served.subjectaltname ?? '', /DNS:relay\.plant\.test/);
    assert.doesNotMatch(served.subjectaltname ?? '', /DNS:localhost/);
    // The enrollment port (server-only TLS) serves it too.
    const enrollmentPort = relay.enrollmentPort;
    assert.ok(enrollmentPort !== undefined);
    const enrollmentServed = await presentedCertificate(enrollmentPort, {
      servername: NEW_NAME,
      ca: ot.caPem,
    });
    assert.equal(normalizeSerialHex(enrollmentServed.serialNumber), serial);

    // The agents connected before are still connected, and their connections still carry work.
    assert.equal(otLink.closed, false);
    assert.equal(itLink.closed, false);
    const [{ session }] = await Promise.all([
      itLink.openSession('press-1', 'press-1/#'),
      audit.waitFor((entry) => entry.event === 'session.opened', 'session opened'),
    ]);
    assert.ok(session > 0);
    // No agent re-enrolled: the same credentials connect anew against the new certificate.
    const again = await connectAgent(ot);
    assert.equal(again.welcome.name, 'press-1');
    await Promise.all([again.close(), otLink.close(), itLink.close()]);
    // Only the probe for the name before the reissue was refused; nothing since.
    assert.equal(audit.entries.filter((entry) => entry.event === 'agent.refused').length, refusalsBefore);

    // Twenty days left: status warns, on stderr and in its JSON.
    const after = await pki(['--state', state, 'status', '--json']);
    assert.equal(after.code, 0, after.stderr);
    const warnings = (JSON.parse(after.stdout) as { warnings: { certificate: string; daysLeft: number }[] })
      .warnings;
    assert.deepEqual(
      warnings.map((w) => w.certificate),
      ['relay'],
    );
    assert.ok((warnings[0]?.daysLeft ?? 99) <= 20);
    assert.match(
      after.stderr,
      /warning: the relay's server certificate expires in 1?\d day\(s\).*relay-cert/,
    );
  });

  it('keeps every other TLS option across the reload: the CRL holds, enrollment works', async () => {
    const retired = await enrollInProcess(state, 'ot', 'retired-press');
    const revoked = await pki(['--state', state, 'revoke', 'retired-press']);
    assert.equal(revoked.code, 0, revoked.stderr);
    await audit.waitFor((entry) => entry.event === 'certificate.revoked', 'the relay applied the revocation');
    const reissued = await pki(['--state', state, 'relay-cert', '--json']);
    assert.equal(reissued.code, 0, reissued.stderr);
    const { serial } = JSON.parse(reissued.stdout) as { serial: string };
    await audit.waitFor(
      (entry) => entry.event === 'tls.server_certificate_reloaded' && entry['serial'] === serial,
      'the relay loaded the second reissue',
    );
    const refusalsBefore = audit.entries.length;
    await assert.rejects(connectAgent(retired));
    // Refused by OpenSSL against the CRL, as before the reload (not only by the later serial check).
    await audit.waitFor(
      (entry) =>
        audit.entries.indexOf(entry) >= refusalsBefore &&
        entry.event === 'agent.refused' &&
        entry['reason'] === 'tls' &&
        entry['detail'] === 'CERT_REVOKED',
      'the revoked agent refused at the handshake',
    );
    // A new agent enrolls through the enrollment port, pinning the CA and checking the new certificate.
    const url = `https://127.0.0.1:${relay.enrollmentPort}`;
    const token = await pki([
      '--state',
      state,
      'token',
      'create',
      '--name',
      'press-2',
      '--role',
      'ot',
      '--url',
      url,
    ]);
    assert.equal(token.code, 0, token.stderr);
    const agentDir = join(dir, 'press-2');
    await enrollAgent({ token: token.stdout.trim(), dir: agentDir });
    const link = await connectAgent(await loadCredentials(agentDir));
    assert.equal(link.welcome.name, 'press-2');
    await link.close();
  });

  it('keeps the current names when none are given, and refuses bad ones', async () => {
    const kept = await pki(['--state', state, 'relay-cert', '--json']);
    assert.equal(kept.code, 0, kept.stderr);
    assert.doesNotMatch(kept.stderr, /no longer answers/);
    const issued = JSON.parse(kept.stdout) as { dnsNames: string[]; ipAddresses: string[]; notAfter: string };
    assert.deepEqual(issued.dnsNames, [NEW_NAME]);
    assert.deepEqual(issued.ipAddresses, ['127.0.0.1']);
    const days = (Date.parse(issued.notAfter) - Date.now()) / DAY_MS;
    assert.ok(days > 364 && days <= 365, `default lifetime ${days} days`);
    const before = await readRelayCertificate(state);
    for (const args of [
      ['--dns', 'Not_A_Host'],
      ['--ip', '300.1.1.1'],
      ['--days', '0'],
      ['--days', '826'],
      ['--days', '1.5'],
    ]) {
      const refused = await pki(['--state', state, 'relay-cert', ...args]);
      assert.equal(refused.code, 2, `${args.join(' ')}: ${refused.stderr}`);
      assert.match(refused.stderr, /CLI_ERR_INVALID_ARGUMENT/);
    }
    assert.deepEqual(await readRelayCertificate(state), before, 'a refused reissue changes nothing');
  });

  it('says so when the certificate and the key on disk do not belong together', async () => {
    const stranger = await generateRsaKeyPair(2048);
    const copy = join(dir, 'mismatched');
    await createCaState(copy);
    await writeFile(statePath(copy, 'relayKey'), stranger.privateKeyPem);
    await assert.rejects(readRelayCertificate(copy), { code: 'PKI_ERR_RELAY_CERT_MISMATCH' });
    // And a relay refuses to start on it with that code, instead of a TLS library error.
    await assert.rejects(startCaStateRelay(copy), { code: 'PKI_ERR_RELAY_CERT_MISMATCH' });
    // The remedy its hint gives, running relay-cert again, mends it with the same names.
    const again = await pki(['--state', copy, 'relay-cert', '--json']);
    assert.equal(again.code, 0, again.stderr);
    const issued = JSON.parse(again.stdout) as { dnsNames: string[]; ipAddresses: string[]; serial: string };
    assert.deepEqual([issued.dnsNames, issued.ipAddresses], [['localhost'], ['127.0.0.1']]);
    assert.equal((await readRelayCertificate(copy)).serialHex, issued.serial);
    const { relay: mended } = await startCaStateRelay(copy);
    await mended.close();
  });
});

describe('pki - expiry warnings', () => {
  const caNotAfter = new Date('2036-01-01T00:00:00Z');
  const relayNotAfter = new Date('2027-01-01T00:00:00Z');
  const at = (iso: string) => expiryWarnings({ relay: relayNotAfter, ca: caNotAfter }, new Date(iso));

  const cases: readonly [string, string, readonly string[]][] = [
    ['a year ahead of both', '2026-01-01T00:00:00Z', []],
    ['a day before the relay warning', '2026-12-01T00:00:00Z', []],
    ['within 30 days of the relay', '2026-12-02T00:00:01Z', ['relay']],
    ['after the relay expired', '2027-02-01T00:00:00Z', ['relay']],
    ['within 30 days of the CA too', '2035-12-15T00:00:00Z', ['relay', 'ca']],
  ];
  for (const [name, now, expected] of cases) {
    it(name, () => {
      assert.deepEqual(
        at(now).map((warning) => warning.certificate),
        expected,
      );
    });
  }

  it('counts whole days left and names the remedy', () => {
    const [ca] = expiryWarnings(
      { relay: relayNotAfter, ca: caNotAfter },
      new Date(caNotAfter.getTime() - 10.5 * DAY_MS),
    ).filter((warning) => warning.certificate === 'ca');
    assert.equal(ca?.daysLeft, 10);
    assert.match(ca?.message ?? '', /CA certificate expires in 10 day\(s\).*re-enrollment/);
    const [expired] = at('2027-02-01T00:00:00Z');
    assert.match(expired?.message ?? '', /has expired/);
  });
});

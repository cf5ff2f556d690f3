/**
 * TLS session resumption on the agent port (relay/server/session-tickets.ts, agents/link/
 * tls-sessions.ts): tickets issued before a relay restart resume after it, because the keys are
 * kept in the state directory; a revocation makes every ticket useless; and identity and
 * revocation are checked on every resumed connection, so that a ticket that still resumes (a
 * handshake begun before the revocation, a certificate that expired since) admits nobody.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { connect as connectTcp, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect as connectTls, type TLSSocket } from 'node:tls';
import { RelayLink } from '../../../agents/link/relay-link.ts';
import { TlsSessionCache } from '../../../agents/link/tls-sessions.ts';
import { normalizeSerialHex } from '../../../pki/serial.ts';
import { openPkiStore, type PkiStore } from '../../../pki/store.ts';
import type { RunningRelay } from '../../../relay/server/relay.ts';
import { TICKET_KEY_FILE } from '../../../relay/server/session-tickets.ts';
import {
  createCaState,
  enrollInProcess,
  startCaStateRelay,
  type EnrolledAgent,
} from '../../support/ca-state.ts';
import { readMetric } from '../../support/metrics.ts';
import type { AuditEntry, AuditRecorder } from '../../support/relay-harness.ts';
import { startTestRelay } from '../../support/relay-harness.ts';
import { createTestPki } from '../../support/test-pki.ts';
import { waitFor } from '../../support/wait.ts';

const HANDSHAKES = 'dmz_relay_agent_handshakes_total';

interface Credentials {
  readonly certPem: string;
  readonly keyPem: string;
  readonly caPem: string;
}

/**
 * One TLS connection offering `session`: whether TLS resumed it (false if the handshake never
 * completed), with the socket, which the relay may still close.
 */
async function tlsAttempt(
  port: number,
  credentials: Credentials,
  session: Buffer | undefined,
): Promise<{ resumed: boolean; socket: TLSSocket; closed: Promise<unknown> }> {
  const socket = connectTls({
    host: '127.0.0.1',
    port,
    ca: credentials.caPem,
    cert: credentials.certPem,
    key: credentials.keyPem,
    ...(session === undefined ? {} : { session }),
  });
  socket.on('error', () => undefined);
  const closed = once(socket, 'close');
  const resumed = await Promise.race([
    once(socket, 'secureConnect').then(() => socket.isSessionReused()),
    closed.then(() => false),
  ]);
  return { resumed, socket, closed };
}

/**
 * A TCP forwarder for one connection that passes the agent's first TLS record (its ClientHello)
 * and everything the relay sends, and holds the agent's later bytes (its Finished) until
 * release(): the relay decides to resume before, and completes the handshake after, whatever
 * happens in between.
 */
async function startHoldingProxy(targetPort: number) {
  let release: () => void = () => undefined;
  let relayAnswered!: () => void;
  const answered = new Promise<void>((resolve) => {
    relayAnswered = resolve;
  });
  const sockets: Socket[] = [];
  const server = createServer((agentSide) => {
    const relaySide = connectTcp({ host: '127.0.0.1', port: targetPort });
    sockets.push(agentSide, relaySide);
    for (const socket of [agentSide, relaySide]) socket.on('error', () => undefined);
    let pending = Buffer.alloc(0);
    let helloPassed = false;
    let released = false;
    const held: Buffer[] = [];
    agentSide.on('data', (chunk: Buffer) => {
      if (released) {
        relaySide.write(chunk);
      } else if (helloPassed) {
        held.push(chunk);
      } else {
        pending = Buffer.concat([pending, chunk]);
        // A TLS record: type, version (2 bytes), length (2 bytes), then the length's bytes.
        if (pending.length < 5 || pending.length < 5 + pending.readUInt16BE(3)) return;
        const end = 5 + pending.readUInt16BE(3);
        relaySide.write(pending.subarray(0, end));
        if (pending.length > end) held.push(pending.subarray(end));
        helloPassed = true;
      }
    });
    release = () => {
      released = true;
      for (const chunk of held.splice(0)) relaySide.write(chunk);
    };
    relaySide.on('data', (chunk: Buffer) => {
      relayAnswered();
      agentSide.write(chunk);
    });
    agentSide.on('close', () => relaySide.destroy());
    relaySide.on('close', () => agentSide.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    answered,
    release: () => release(),
    async close() {
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

function refusalOf(audit: AuditRecorder, reason: string, serialHex: string): AuditEntry | undefined {
  return audit.entries.find(
    (entry) =>
      entry.event === 'agent.refused' &&
      entry['reason'] === reason &&
      typeof entry['serial'] === 'string' &&
      normalizeSerialHex(entry['serial']) === serialHex,
  );
}

describe('relay/server session resumption across restarts and revocations', () => {
  let root: string;
  let stateDir: string;
  let store: PkiStore;
  let relay: RunningRelay;
  let audit: AuditRecorder;
  let port: number;
  let press: EnrolledAgent;
  let victim: EnrolledAgent;
  let late: EnrolledAgent;
  /** One agent process's ticket cache, shared by every link of this suite. */
  const sessions = new TlsSessionCache();
  const url = () => `wss://127.0.0.1:${port}/v1/agent`;
  const link = (agent: EnrolledAgent) => RelayLink.connect({ url: url(), ...agent, tlsSessions: sessions });
  const scope = (agent: EnrolledAgent) => ({ url: url(), certPem: agent.certPem, caPem: agent.caPem });

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'dmz-ticket-resumption-'));
    stateDir = join(root, 'state');
    await createCaState(stateDir);
    store = openPkiStore(stateDir);
    press = await enrollInProcess(stateDir, 'ot', 'press-1');
    victim = await enrollInProcess(stateDir, 'ot', 'victim');
    late = await enrollInProcess(stateDir, 'ot', 'late');
    ({ relay, audit } = await startCaStateRelay(stateDir));
    port = relay.agentPort;
  });
  after(async () => {
    await relay.close();
    store.close();
    await rm(root, { recursive: true, force: true });
  });

  it('resumption - the first start makes a 0600 ticket key file in the state directory', async () => {
    assert.equal((await stat(join(stateDir, TICKET_KEY_FILE))).mode & 0o777, 0o600);
  });

  it('resumption - a ticket issued before a relay restart resumes after it, as the same identity', async () => {
    const first = await link(press);
    assert.equal(first.tlsResumed, false);
    await first.close();
    await relay.close();

    ({ relay, audit } = await startCaStateRelay(stateDir, { agentPort: port }));
    const again = await link(press);
    try {
      assert.equal(again.tlsResumed, true, 'the link did not resume after the restart');
      // The identity check ran on the resumed session: name and serial from the original certificate.
      assert.equal(again.welcome.name, 'press-1');
      const connected = await audit.waitFor(
        (entry) => entry.event === 'agent.connected' && entry['agent'] === 'press-1',
        'press-1 admitted by the new relay',
      );
      assert.equal(connected['serial'], press.serialHex);
      assert.equal(await readMetric(relay, HANDSHAKES, { session: 'resumed' }), 1);
      assert.equal(await readMetric(relay, HANDSHAKES, { session: 'full' }), 0);
    } finally {
      await again.close();
    }
  });

  it('resumption - after a revocation no ticket resumes, and the revoked agent is refused at its full handshake', async () => {
    const victimLink = await link(victim);
    const pressTicketBefore = sessions.sessionFor(scope(press));
    assert.ok(pressTicketBefore !== undefined && sessions.sessionFor(scope(victim)) !== undefined);
    const keyFile = join(stateDir, TICKET_KEY_FILE);
    const storedBefore = await readFile(keyFile, 'utf8');

    assert.equal(store.revokeCertificates('victim', 'keyCompromise', new Date()).length, 1);
    await audit.waitFor((entry) => entry.event === 'certificate.revoked', 'the revocation applied');
    await audit.waitFor(
      (entry) => entry.event === 'tls.ticket_keys_rotated' && entry['reason'] === 'tls reload',
      'the ticket keys rotated',
    );
    await waitFor(() => victimLink.closed, 'the revoked agent cut');

    // The key file is rewritten with the new keys' salt, still 0600.
    await waitFor(async () => (await readFile(keyFile, 'utf8')) !== storedBefore, 'the key file rewritten');
    assert.equal((await stat(keyFile)).mode & 0o777, 0o600);

    // The revoked agent offers its ticket: it no longer decrypts, the full handshake checks the CRL.
    const attempt = await tlsAttempt(port, victim, sessions.sessionFor(scope(victim)));
    assert.equal(attempt.resumed, false, "the revoked agent's ticket resumed");
    await attempt.closed;
    await audit.waitFor(
      (entry) =>
        entry.event === 'agent.refused' && entry['reason'] === 'tls' && entry['detail'] === 'CERT_REVOKED',
      'the revoked agent refused at the handshake',
    );
    // Everyone's tickets went with the old keys: press-1 connects, with a full handshake.
    const press2 = await link(press);
    try {
      assert.equal(press2.tlsResumed, false, 'a ticket from before the revocation resumed');
      assert.equal(press2.welcome.name, 'press-1');
    } finally {
      await press2.close();
    }
  });

  it('resumption - a ticket that still resumes (a handshake begun before the revocation) is refused by the serial check', async () => {
    const first = await link(late);
    await first.close();
    const ticket = sessions.sessionFor(scope(late));
    assert.ok(ticket !== undefined);
    const refusedBefore = await readMetric(relay, 'dmz_relay_connections_refused_total', {
      reason: 'identity',
    });
    const resumedBefore = await readMetric(relay, HANDSHAKES, { session: 'resumed' });

    const proxy = await startHoldingProxy(port);
    try {
      const attempt = await tlsAttempt(proxy.port, late, ticket);
      await proxy.answered;
      // The relay chose to resume (under the keys of before the revocation) ...
      assert.equal(attempt.resumed, true);
      assert.equal(store.revokeCertificates('late', 'keyCompromise', new Date()).length, 1);
      await audit.waitFor(
        (entry) =>
          entry.event === 'certificate.revoked' &&
          Array.isArray(entry['serials']) &&
          (entry['serials'] as unknown[]).includes(late.serialHex),
        'the revocation of late applied',
      );
      const revokedAt = audit.entries.length;
      // ... and completes the handshake after it: the identity check refuses the serial.
      proxy.release();
      await attempt.closed;
      await waitFor(
        () => refusalOf(audit, 'RELAY_ERR_REVOKED', late.serialHex),
        'the resumed session of the revoked agent refused',
      );
      assert.equal(
        await readMetric(relay, 'dmz_relay_connections_refused_total', { reason: 'identity' }),
        refusedBefore + 1,
      );
      assert.equal(await readMetric(relay, HANDSHAKES, { session: 'resumed' }), resumedBefore);
      assert.ok(
        !audit.entries
          .slice(revokedAt)
          .some((entry) => entry.event === 'agent.connected' && entry['agent'] === 'late'),
        'the revoked agent was admitted',
      );
    } finally {
      await proxy.close();
    }
  });
});

describe('relay/server session resumption and certificate dates', () => {
  it('resumption - a session resumed after its certificate expired is refused by the identity check', async () => {
    const pki = await createTestPki();
    const t = await startTestRelay(pki);
    try {
      const notAfter = new Date(Date.now() + 2_000);
      const brief = await pki.issueAgent('ot', 'brief', {
        notBefore: new Date(Date.now() - 60_000),
        notAfter,
      });
      const credentials = { ...brief, caPem: pki.ca.certPem };
      const sessions = new TlsSessionCache();
      const first = await RelayLink.connect({ url: t.url, ...credentials, tlsSessions: sessions });
      await first.close();
      const ticket = sessions.sessionFor({ url: t.url, ...credentials });
      assert.ok(ticket !== undefined);
      // X.509 times have whole seconds: wait until notAfter has certainly passed.
      await waitFor(() => Date.now() > notAfter.getTime() + 1_000, 'the certificate expired', 5_000, 50);

      const attempt = await tlsAttempt(t.relay.agentPort, credentials, ticket);
      assert.equal(attempt.resumed, true, 'OpenSSL resumed the session of an expired certificate');
      await attempt.closed;
      await t.audit.waitFor(
        (entry) =>
          entry.event === 'agent.refused' &&
          entry['reason'] === 'RELAY_ERR_IDENTITY' &&
          entry['detail'] === 'certificate is not valid now',
        'the expired certificate refused',
      );
      assert.equal(await readMetric(t.relay, HANDSHAKES, { session: 'resumed' }), 0);
    } finally {
      await t.stop();
    }
  });
});

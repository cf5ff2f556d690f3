/**
 * Once a revocation has been applied, the revoked agent is never admitted again, over any
 * connection: not even over a TLS connection it opened, and had verified, before the revocation.
 *
 * Found by an outside audit: the certificate was checked only at the TLS handshake, and HTTP
 * keep-alive let that connection outlive its first request, so an agent could hold one open and
 * upgrade on it after it was revoked (the relay cuts only upgraded connections of a revoked
 * serial). The agent listener (relay/server/agent-listener.ts) now checks the serial against the
 * revoked set again at the upgrade, and closes a connection after any other request (no keep-alive).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as connectTls, type TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { openPkiStore, type PkiStore } from '../../../pki/store.ts';
import { decodeFrame, encodeFrame } from '../../../relay/protocol/codec.ts';
import { SUBPROTOCOL } from '../../../relay/protocol/limits.ts';
import type { RunningRelay } from '../../../relay/server/relay.ts';
import {
  createCaState,
  enrollInProcess,
  startCaStateRelay,
  type EnrolledAgent,
} from '../../support/ca-state.ts';
import type { AuditRecorder } from '../../support/relay-harness.ts';
import { waitFor } from '../../support/wait.ts';

/** How long the relay gets to admit the revoked agent before the test concludes it did not. */
const ADMISSION_WATCH_MS = 2_000;

describe('relay/server revocation versus a TLS connection opened before it', () => {
  let root: string;
  let stateDir: string;
  let store: PkiStore;
  let relay: RunningRelay;
  let audit: AuditRecorder;
  let victim: EnrolledAgent;
  const sockets: { destroy(): void }[] = [];

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'dmz-revocation-at-upgrade-'));
    stateDir = join(root, 'state');
    await createCaState(stateDir);
    store = openPkiStore(stateDir);
    victim = await enrollInProcess(stateDir, 'ot', 'victim');
    ({ relay, audit } = await startCaStateRelay(stateDir));
  });
  after(async () => {
    for (const socket of sockets) socket.destroy();
    await relay.close();
    store.close();
    await rm(root, { recursive: true, force: true });
  });

  /** A TLS connection with the victim's certificate that has asked for nothing but a 404. */
  async function preOpen(): Promise<TLSSocket> {
    const socket = await new Promise<TLSSocket>((resolve, reject) => {
      const tls = connectTls({
        host: '127.0.0.1',
        port: relay.agentPort,
        ca: victim.caPem,
        cert: victim.certPem,
        key: victim.keyPem,
        servername: 'localhost',
      });
      tls.once('secureConnect', () => resolve(tls));
      tls.once('error', reject);
    });
    sockets.push(socket);
    socket.on('error', () => undefined);
    const answered = new Promise<string>((resolve) => {
      let text = '';
      const onData = (chunk: Buffer) => {
        text += chunk.toString('latin1');
        if (text.includes('\r\n\r\n')) {
          socket.off('data', onData);
          resolve(text);
        }
      };
      socket.on('data', onData);
    });
    socket.write('GET /keep-me-alive HTTP/1.1\r\nHost: relay\r\n\r\n');
    assert.match(await answered, /^HTTP\/1\.1 404/);
    return socket;
  }

  /** A fresh connection with the same certificate: 'welcome', or how it ended. */
  function freshAttempt(): Promise<string> {
    return new Promise((resolve) => {
      const ws = new WebSocket(`wss://127.0.0.1:${relay.agentPort}/v1/agent`, SUBPROTOCOL, {
        ca: victim.caPem,
        cert: victim.certPem,
        key: victim.keyPem,
        handshakeTimeout: 3_000,
      });
      sockets.push({ destroy: () => ws.terminate() });
      ws.on('error', () => resolve('refused'));
      ws.on('close', () => resolve('refused'));
      ws.on('open', () => ws.send(encodeFrame({ type: 'hello', software: 'audit' })));
      ws.on('message', (data: Buffer) => {
        if (decodeFrame(data, 'toAgent').type === 'welcome') resolve('welcome');
      });
    });
  }

  it('relay - a revoked agent cannot upgrade a keep-alive connection it opened before the revocation', async () => {
    const early = await preOpen();

    const revokedAt = Date.now();
    assert.equal(store.revokeCertificates('victim', 'keyCompromise', new Date()).length, 1);
    await audit.waitFor((entry) => entry.event === 'certificate.revoked', 'the revocation applied');
    // The revocation holds for new handshakes...
    assert.equal(await freshAttempt(), 'refused', 'a fresh handshake of the revoked agent was admitted');
    const connectedBefore = audit.entries.filter(
      (entry) => entry.event === 'agent.connected' && entry['agent'] === 'victim',
    ).length;

    // ...and must hold for the connection opened before it.
    let welcomed = false;
    if (!early.destroyed) {
      const ws = new WebSocket(`wss://127.0.0.1:${relay.agentPort}/v1/agent`, SUBPROTOCOL, {
        createConnection: () => early,
      });
      sockets.push({ destroy: () => ws.terminate() });
      ws.on('error', () => undefined);
      ws.on('open', () => ws.send(encodeFrame({ type: 'hello', software: 'audit' })));
      ws.on('message', (data: Buffer) => {
        if (decodeFrame(data, 'toAgent').type === 'welcome') welcomed = true;
      });
    }
    const admitted = await waitFor(
      () =>
        welcomed ||
        audit.entries.filter((entry) => entry.event === 'agent.connected' && entry['agent'] === 'victim')
          .length > connectedBefore,
      'the revoked agent admitted',
      ADMISSION_WATCH_MS,
    ).catch(() => false);
    assert.equal(
      admitted,
      false,
      `the agent revoked ${Date.now() - revokedAt} ms ago was admitted over a connection from before its revocation`,
    );
  });
});

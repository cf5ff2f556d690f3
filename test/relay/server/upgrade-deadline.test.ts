/**
 * An authenticated connection to the agent port is for one WebSocket, asked for at once: one that
 * has not upgraded within the handshake timeout is cut, whether it sent nothing or some other request.
 *
 * Found by an outside audit: nothing bounded such a connection but Node's request timeout (checked
 * every 30 s) and keep-alive (72 s, renewed by each request), so each was a file descriptor held
 * outside every share of the connection budget. The agent listener (relay/server/agent-listener.ts)
 * now sets an upgrade deadline at the TLS handshake, allows no keep-alive, and keeps the
 * connection's gate slot until the WebSocket is established (gate.release).
 */
import assert from 'node:assert/strict';
import { connect as connectTls, type TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { startTestRelay, type TestRelay } from '../../support/relay-harness.ts';
import { createTestPki, type TestPki } from '../../support/test-pki.ts';

const HANDSHAKE_TIMEOUT_MS = 1_000;
/** The cut is due at the deadline; a loaded machine may add a little. */
const CUT_BOUND_MS = HANDSHAKE_TIMEOUT_MS + 2_000;

interface Held {
  readonly socket: TLSSocket;
  readonly closed: Promise<number>;
}

describe('relay/server authenticated connections that never upgrade', () => {
  let pki: TestPki;
  let t: TestRelay;
  const held: Held[] = [];

  before(async () => {
    pki = await createTestPki();
    t = await startTestRelay(pki, { tls: { handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS } });
  });
  after(async () => {
    for (const { socket } of held) socket.destroy();
    await t.stop();
  });

  async function open(first?: string): Promise<Held> {
    const credentials = await pki.issueAgent('ot', 'press-7');
    const socket = await new Promise<TLSSocket>((resolve, reject) => {
      const tls = connectTls({
        host: '127.0.0.1',
        port: t.relay.agentPort,
        ca: pki.ca.certPem,
        cert: credentials.certPem,
        key: credentials.keyPem,
        servername: 'localhost',
      });
      tls.once('secureConnect', () => resolve(tls));
      tls.once('error', reject);
    });
    socket.on('error', () => undefined);
    socket.resume();
    const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
    if (first !== undefined) socket.write(first);
    const entry = { socket, closed };
    held.push(entry);
    return entry;
  }

  async function closedWithin(entry: Held, ms: number): Promise<boolean> {
    return Promise.race([
      entry.closed.then(() => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms)),
    ]);
  }

  it('relay - an authenticated connection that sends nothing is cut at the handshake timeout', async () => {
    const idle = await open();
    assert.equal(
      await closedWithin(idle, CUT_BOUND_MS),
      true,
      `an authenticated connection that never upgraded was still open after ${CUT_BOUND_MS} ms`,
    );
  });

  it('relay - a non-upgrade request does not keep an authenticated connection alive', async () => {
    const kept = await open('GET /not-the-upgrade HTTP/1.1\r\nHost: relay\r\n\r\n');
    assert.equal(
      await closedWithin(kept, CUT_BOUND_MS),
      true,
      `a keep-alive connection that never upgraded was still open after ${CUT_BOUND_MS} ms`,
    );
  });
});

/**
 * The handshake queue is served in order as slots free: an agent that queued behind stalled
 * handshakes gets its turn while an attacker keeps opening new ones to evict the stale.
 *
 * Found by an outside audit: a slot taken back from a stale handshake went to the connection
 * arriving, not to the head of the queue, and a wait was checked only when a slot freed, so one
 * stalled connection every 1.5 s held every slot while a queued agent waited without bound. The
 * connection gate (relay/server/connection-gate.ts) now serves the queue before any newcomer,
 * gives a stale slot to the head of the queue, and refuses waits past maxWaitMs in a periodic sweep.
 */
import assert from 'node:assert/strict';
import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls, type ConnectionOptions } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { startTestRelay, type TestRelay } from '../../support/relay-harness.ts';
import { createTestPki, type TestPki } from '../../support/test-pki.ts';

/**
 * Under STALE_HANDSHAKE_MS but over half of it: with 2 slots, each arrival finds the older stalled
 * handshake stale and evicts it, while the younger one is still fresh.
 */
const ATTACK_PERIOD_MS = 1_500;
const ATTACK_MAX_MS = 15_000;
/**
 * Four addresses at 10 connections a minute each, far inside the per-address rate limit; at the
 * default limits (64 slots, 8 per address, 120 connections a minute) it takes ~16.
 */
const ATTACKER_SOURCES = ['127.0.0.21', '127.0.0.22', '127.0.0.23', '127.0.0.24'];
const HONEST_SOURCE = '127.0.0.30';
/** Two attack periods and room to spare; the relay's handshake timeout stays at its default 10 s. */
const SERVED_BOUND_MS = 4_000;

describe('relay/server the handshake queue under stale-handshake eviction', () => {
  let pki: TestPki;
  let t: TestRelay;
  const held: Socket[] = [];
  let attacking = true;

  before(async () => {
    pki = await createTestPki();
    t = await startTestRelay(pki, {
      limits: { handshakesInProgress: 2, handshakesInProgressPerAddress: 1, handshakeQueue: 8 },
    });
  });
  after(async () => {
    attacking = false;
    for (const socket of held) socket.destroy();
    await t.stop();
  });

  /** A TCP connection that never sends a byte: it holds a slot until it is evicted or times out. */
  function stall(index: number): Promise<void> {
    return new Promise((resolve) => {
      const socket = connectTcp({
        host: '127.0.0.1',
        port: t.relay.agentPort,
        localAddress: ATTACKER_SOURCES[index % ATTACKER_SOURCES.length],
      });
      held.push(socket);
      socket.on('error', () => undefined);
      socket.once('connect', () => resolve());
    });
  }

  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  it('relay - an agent queued behind stale handshakes is served while newcomers keep evicting them', async () => {
    const started = Date.now();
    // Staggered: each slot holds a stalled handshake of a different age, and every arrival finds
    // the oldest one past STALE_HANDSHAKE_MS and evicts it.
    await stall(0);
    let index = 1;
    const attacker = (async () => {
      while (attacking && Date.now() - started < ATTACK_MAX_MS) {
        await sleep(ATTACK_PERIOD_MS);
        await stall(index++);
      }
    })();
    // Just after an eviction: both slots are younger than 2 s, so the agent has to queue.
    await sleep(2 * ATTACK_PERIOD_MS + 100);

    const credentials = await pki.issueAgent('ot', 'press-7');
    const asked = Date.now();
    const outcome = await new Promise<string>((resolve) => {
      const options: ConnectionOptions & { localAddress: string } = {
        host: '127.0.0.1',
        port: t.relay.agentPort,
        localAddress: HONEST_SOURCE,
        ca: pki.ca.certPem,
        cert: credentials.certPem,
        key: credentials.keyPem,
        servername: 'localhost',
      };
      const socket = connectTls(options);
      const timer = setTimeout(() => {
        socket.destroy();
        resolve(`still queued after ${Date.now() - asked} ms`);
      }, SERVED_BOUND_MS);
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        socket.destroy();
        resolve('connected');
      });
      socket.once('error', (error: Error & { code?: string }) => {
        clearTimeout(timer);
        resolve(error.code ?? error.message);
      });
    });
    attacking = false;
    await attacker;
    assert.equal(
      outcome,
      'connected',
      `the queued agent was not served (${outcome}) while ${index} stalled connections took its turn`,
    );
  });
});

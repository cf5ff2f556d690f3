/**
 * A relay restart with a fleet connected: every agent reconnects at once (clients with full-jitter
 * backoff, as the agent runtime will have). The relay takes handshakes a bounded number at a time,
 * queues the rest, and refuses early and cheaply what its queue cannot hold: no handshake runs
 * into its timeout half-done, and the whole fleet is back within a bound. Sized for CI; the
 * benchmark runs the 10,000-agent version.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { reconnectDelayMs, type BackoffLimits } from '../../../agents/link/backoff.ts';
import { RelayLink } from '../../../agents/link/relay-link.ts';
import { freePort } from '../../support/ports.ts';
import { readMetric } from '../../support/metrics.ts';
import { startTestRelay, type TestRelay } from '../../support/relay-harness.ts';
import { createTestPki, type AgentCredentials, type TestPki } from '../../support/test-pki.ts';
import { waitFor } from '../../support/wait.ts';

const FLEET = 300;
/** Full jitter (agents/link/backoff.ts), with a base and cap scaled down for a CI-sized fleet. */
const BACKOFF: BackoffLimits = { baseMs: 100, capMs: 2_000 };
/** Generous for 300 handshakes on two shared cores (the clients run in this process too). */
const BACK_WITHIN_MS = 30_000;
/**
 * Well above one handshake's cost even on a loaded CI machine: a timeout here would mean the gate
 * let in more handshakes than the relay can finish, not that the machine was busy.
 */
const HANDSHAKE_TIMEOUT_MS = 5_000;

/** One agent that reconnects, with full jitter, whenever its connection ends, until stopped. */
class ReconnectingAgent {
  client: RelayLink | undefined;
  attempts = 0;
  #stopped = false;
  readonly #url: string;
  readonly #credentials: AgentCredentials & { caPem: string };

  constructor(url: string, credentials: AgentCredentials & { caPem: string }) {
    this.#url = url;
    this.#credentials = credentials;
  }

  get connected(): boolean {
    return this.client !== undefined && !this.client.closed;
  }

  async run(): Promise<void> {
    for (let failures = 0; !this.#stopped;) {
      this.attempts++;
      try {
        this.client = await RelayLink.connect(
          { url: this.#url, ...this.#credentials, connectTimeoutMs: 10_000 },
          { closed: () => this.#reconnectSoon() },
        );
        return;
      } catch {
        failures++;
        await new Promise((resolve) => setTimeout(resolve, reconnectDelayMs(failures, BACKOFF)));
      }
    }
  }

  stop(): Promise<void> {
    this.#stopped = true;
    return this.client?.close() ?? Promise.resolve();
  }

  #reconnectSoon(): void {
    if (this.#stopped) return;
    this.client = undefined;
    // The first attempt after a drop is jittered too: a fleet must not come back in one lump.
    setTimeout(() => void this.run(), reconnectDelayMs(0, BACKOFF));
  }
}

describe('relay/server reconnect storm', () => {
  let pki: TestPki;
  let port: number;
  let fleet: ReconnectingAgent[];
  let t: TestRelay | undefined;

  const start = (): Promise<TestRelay> =>
    startTestRelay(pki, {
      listen: { agents: { host: '127.0.0.1', port }, admin: { host: '127.0.0.1', port: 0 } },
      tls: { handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS },
      // Every agent comes from 127.0.0.1, as a plant behind one NAT address would.
      limits: {
        // Few slots, so most of the storm waits in the queue: the queue, not luck, brings it back.
        handshakesInProgress: 4,
        handshakesInProgressPerAddress: 4,
        trustedSources: [
          {
            network: '127.0.0.1/32',
            connectionAttemptsPerMinute: 100_000,
            handshakesInProgressPerAddress: 4,
          },
        ],
      },
    });

  before(async () => {
    pki = await createTestPki();
    port = await freePort();
    const credentials = await Promise.all(
      Array.from({ length: FLEET }, (_, index) => pki.issueAgent('ot', `plc-${index}`)),
    );
    t = await start();
    fleet = credentials.map(
      (agent) =>
        new ReconnectingAgent(`wss://127.0.0.1:${port}/v1/agent`, { ...agent, caPem: pki.ca.certPem }),
    );
  });
  after(async () => {
    await Promise.all(fleet.map((agent) => agent.stop()));
    await t?.stop();
  });

  it(`relay - ${FLEET} agents connected, relay restarted: all back within ${BACK_WITHIN_MS / 1000} s, no handshake timed out`, async (context) => {
    await Promise.all(fleet.map((agent) => agent.run()));
    assert.equal(t?.relay.broker.agentCount, FLEET);

    await t?.relay.close();
    t = await start();
    const started = Date.now();
    // Back means both ends agree: the relay holds every agent, and every agent has its welcome.
    await waitFor(
      () => t?.relay.broker.agentCount === FLEET && fleet.every((agent) => agent.connected),
      `${FLEET} agents back`,
      BACK_WITHIN_MS,
      50,
    );
    const elapsed = Date.now() - started;
    assert.equal(
      await readMetric(t.relay, 'dmz_relay_connections_refused_total', { reason: 'handshake_timeout' }),
      0,
    );
    context.diagnostic(
      `storm: ${FLEET} agents back in ${elapsed} ms, ${fleet.reduce((sum, agent) => sum + agent.attempts, 0) - 2 * FLEET} retries, ` +
        `${await readMetric(t.relay, 'dmz_relay_connections_refused_total', { reason: 'relay_busy' })} refused busy`,
    );
  });
});

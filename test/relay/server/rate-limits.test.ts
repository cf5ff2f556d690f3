import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { readMetric } from '../../support/metrics.ts';
import type { OpenedSession } from '../../../agents/link/relay-link.ts';
import type { RawAgent } from '../../support/raw-agent.ts';
import { startTestRelay, type TestRelay } from '../../support/relay-harness.ts';
import { createTestPki, type TestPki } from '../../support/test-pki.ts';
import { probeAgentPort } from '../../support/tls-probe.ts';
import { waitFor } from '../../support/wait.ts';

const MESSAGES_PER_SECOND = 20;
const BURST = 100;

/** Sends BURST pings at once; resolves when each got a pong or an error, or the connection closed. */
async function pingBurst(agent: RawAgent): Promise<{ pongs: number; limited: number }> {
  for (let nonce = 1; nonce <= BURST; nonce++) agent.send({ type: 'ping', nonce });
  const count = () => ({
    pongs: agent.frames.filter((frame) => frame.type === 'pong').length,
    limited: agent.frames.filter((frame) => frame.type === 'error' && frame.code === 'RELAY_ERR_RATE_LIMITED')
      .length,
  });
  await waitFor(() => {
    const { pongs, limited } = count();
    return pongs + limited === BURST || agent.closed !== undefined;
  }, 'every ping answered');
  return count();
}

describe('relay/server rate limits', () => {
  let pki: TestPki;
  before(async () => {
    pki = await createTestPki();
  });

  describe('messages per second', () => {
    let t: TestRelay;
    before(async () => {
      t = await startTestRelay(pki, {
        limits: { messagesPerSecond: MESSAGES_PER_SECOND, violationsBeforeDisconnect: 1_000 },
      });
    });
    after(() => t.stop());

    it('relay - a burst beyond messagesPerSecond is answered with RATE_LIMITED; the agent stays', async () => {
      const agent = await t.connectRaw('it', 'chatty');
      const { pongs, limited } = await pingBurst(agent);
      // The window is one second: the burst may straddle two windows, never more.
      assert.ok(pongs >= 1 && pongs <= 2 * MESSAGES_PER_SECOND, `${pongs} pings answered`);
      assert.equal(limited, BURST - pongs);
      assert.equal(
        await readMetric(t.relay, 'dmz_relay_frame_errors_total', { code: 'RELAY_ERR_RATE_LIMITED' }),
        limited,
      );
      assert.equal(agent.closed, undefined);
    });

    it('relay - one agent hitting its limit does not limit another', async () => {
      const noisy = await t.connectRaw('it', 'noisy');
      const quiet = await t.connectRaw('it', 'quiet');
      await pingBurst(noisy);
      quiet.send({ type: 'ping', nonce: 1 });
      await quiet.next('pong', (frame) => frame.nonce === 1);
      assert.equal(quiet.frames.filter((frame) => frame.type === 'error').length, 0);
    });
  });

  describe('violations before disconnect', () => {
    let t: TestRelay;
    before(async () => {
      t = await startTestRelay(pki, {
        limits: { messagesPerSecond: MESSAGES_PER_SECOND, violationsBeforeDisconnect: 5 },
      });
    });
    after(() => t.stop());

    it('relay - an agent that keeps exceeding its rate is disconnected with 1013 RATE_LIMITED', async () => {
      const agent = await t.connectRaw('ot', 'flooder');
      await pingBurst(agent);
      assert.deepEqual(await agent.waitClosed(), { code: 1013, reason: 'RELAY_ERR_RATE_LIMITED' });
      await t.audit.waitFor(
        (entry) =>
          entry.event === 'agent.disconnected' &&
          entry['agent'] === 'flooder' &&
          entry['reason'] === 'RELAY_ERR_RATE_LIMITED',
        'the disconnect',
      );
      const next = await t.connect('ot', 'well-behaved');
      assert.equal(next.client.welcome.name, 'well-behaved');
    });
  });

  describe('connection attempts per minute', () => {
    const ATTEMPTS = 3;
    let t: TestRelay;
    before(async () => {
      t = await startTestRelay(pki, { limits: { connectionAttemptsPerMinute: ATTEMPTS } });
    });
    after(() => t.stop());

    it('relay - the connection beyond connectionAttemptsPerMinute is dropped before TLS completes', async () => {
      const admitted: RawAgent[] = [];
      for (let index = 1; index <= ATTEMPTS; index++) admitted.push(await t.connectRaw('ot', `plc-${index}`));
      const credentials = await pki.issueAgent('ot', 'plc-4');
      const from = t.audit.entries.length;
      const result = await probeAgentPort(t.relay.agentPort, {
        ca: pki.ca.certPem,
        cert: credentials.certPem,
        key: credentials.keyPem,
      });
      assert.deepEqual([result.handshake, result.received], [false, ''], 'the TLS handshake completed');
      const refused = await waitFor(
        () => t.audit.entries.slice(from).find((entry) => entry.event === 'agent.refused'),
        'the refusal',
      );
      assert.deepEqual([refused['reason'], refused['address']], ['RELAY_ERR_RATE_LIMITED', '127.0.0.1']);
      assert.equal(
        await readMetric(t.relay, 'dmz_relay_connections_refused_total', { reason: 'rate_limited' }),
        1,
      );
      // Those already in are not affected.
      for (const agent of admitted) {
        agent.send({ type: 'ping', nonce: 9 });
        await agent.next('pong', (frame) => frame.nonce === 9);
      }
    });
  });

  describe('sessions and subscriptions per agent', () => {
    let t: TestRelay;
    let id = 0;
    before(async () => {
      t = await startTestRelay(pki, {
        limits: { maxSessionsPerAgent: 2, maxSessionsPerPair: 2, maxSubscriptionsPerAgent: 2 },
      });
    });
    after(() => t.stop());

    /** Two calls within the limit, one beyond it, and how to free a place again. */
    const LIMITS: readonly {
      name: string;
      setup: (prefix: string) => Promise<{
        within: readonly (() => Promise<unknown>)[];
        beyond: () => Promise<unknown>;
        free: () => Promise<unknown>;
      }>;
    }[] = [
      {
        name: 'a third session of one IT agent',
        setup: async (prefix) => {
          const ots = await Promise.all([1, 2, 3].map((n) => t.connect('ot', `${prefix}-ot-${n}`)));
          const it = await t.connect('it', `${prefix}-it`);
          let first: OpenedSession | undefined;
          const open = (n: number) => async () => {
            const opened = await it.client.openSession(`${prefix}-ot-${n}`, `${prefix}-ot-${n}/#`);
            first ??= opened;
          };
          return {
            within: [open(1), open(2)],
            beyond: open(3),
            free: async () => {
              assert.ok(first !== undefined);
              it.client.closeSession(first.session);
              await ots[0]!.next('sessionClose');
            },
          };
        },
      },
      {
        name: 'a third session with one OT agent',
        setup: async (prefix) => {
          const ot = await t.connect('ot', `${prefix}-ot`);
          const its = await Promise.all([1, 2, 3].map((n) => t.connect('it', `${prefix}-it-${n}`)));
          let first: OpenedSession | undefined;
          const open = (n: number) => async () => {
            const opened = await its[n - 1]!.client.openSession(`${prefix}-ot`, `${prefix}-ot/#`);
            if (n === 1) first = opened;
          };
          return {
            within: [open(1), open(2)],
            beyond: open(3),
            free: async () => {
              assert.ok(first !== undefined);
              its[0]!.client.closeSession(first.session);
              await ot.next('sessionClose');
            },
          };
        },
      },
      {
        name: 'a third subscription of one IT agent, across its sessions',
        setup: async (prefix) => {
          await Promise.all(['a', 'b'].map((n) => t.connect('ot', `${prefix}-${n}`)));
          const it = await t.connect('it', `${prefix}-it`);
          const first = await it.client.openSession(`${prefix}-a`, `${prefix}-a/#`);
          const second = await it.client.openSession(`${prefix}-b`, `${prefix}-b/#`);
          return {
            within: [
              () => it.client.subscribe(first.session, `${prefix}-a/temps/#`),
              () => it.client.subscribe(first.session, `${prefix}-a/flows/#`),
              // The same filter again is a resume, not a new subscription.
              () => it.client.subscribe(first.session, `${prefix}-a/flows/#`),
            ],
            beyond: () => it.client.subscribe(second.session, `${prefix}-b/#`),
            free: () => it.client.unsubscribe(first.session, `${prefix}-a/temps/#`),
          };
        },
      },
    ];
    for (const row of LIMITS) {
      it(`relay - ${row.name} is refused with TOO_MANY until one is given up`, async () => {
        const { within, beyond, free } = await row.setup(`lim${++id}`);
        for (const call of within) await call();
        await assert.rejects(beyond(), { code: 'RELAY_ERR_TOO_MANY' });
        await free();
        await beyond();
      });
    }
  });
});

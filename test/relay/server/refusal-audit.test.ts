/**
 * Refusals anyone can cause are aggregated in the audit log: the first of a kind from a source is
 * written with its detail, repeats within the window become one summary line, and sources beyond
 * the tracked number share one bucket. A flood of connects writes a handful of lines, not one or
 * two per connect.
 */
import assert from 'node:assert/strict';
import { connect as connectTcp } from 'node:net';
import { describe, it } from 'node:test';
import { createAuditLog } from '../../../relay/server/audit.ts';
import { MAX_REFUSAL_SOURCES, RefusalAudit } from '../../../relay/server/refusal-audit.ts';
import { AuditRecorder, startTestRelay, type TestRelay } from '../../support/relay-harness.ts';
import { readMetric } from '../../support/metrics.ts';
import { createTestPki, type TestPki } from '../../support/test-pki.ts';
import { waitFor } from '../../support/wait.ts';

/** Connects and hangs up at once, as a port scanner does; resolves when the socket is gone. */
function connectAndHangUp(port: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = connectTcp({ host: '127.0.0.1', port });
    socket.once('connect', () => socket.destroy());
    socket.once('error', () => undefined);
    socket.once('close', () => resolve());
  });
}

describe('relay/server refusal audit', () => {
  it('audit - repeats of one refusal from one source become one summary with count, first and last', async () => {
    const recorder = new AuditRecorder();
    let now = Date.parse('2026-12-01T10:00:00.000Z');
    const refusals = new RefusalAudit(createAuditLog(recorder.stream), () => now);
    refusals.record('agent.refused', '192.0.2.1', 'tls', 'CERT_REVOKED', { serial: 'ab' });
    for (let repeat = 0; repeat < 999; repeat++) {
      now += 10;
      refusals.record('agent.refused', '192.0.2.1', 'tls', 'CERT_REVOKED', { serial: 'ab' });
    }
    // Another detail is another kind of refusal: written at once.
    refusals.record('agent.refused', '192.0.2.1', 'tls', 'ECONNRESET');
    refusals.close();
    await waitFor(() => recorder.entries.length >= 3, 'three audit lines');
    const lines = recorder.entries.map(
      ({ event, address, reason, detail, repeated, first, last, serial }) => ({
        event,
        address,
        reason,
        detail,
        repeated,
        first,
        last,
        serial,
      }),
    );
    assert.deepEqual(lines, [
      {
        event: 'agent.refused',
        address: '192.0.2.1',
        reason: 'tls',
        detail: 'CERT_REVOKED',
        serial: 'ab',
        repeated: undefined,
        first: undefined,
        last: undefined,
      },
      {
        event: 'agent.refused',
        address: '192.0.2.1',
        reason: 'tls',
        detail: 'ECONNRESET',
        serial: undefined,
        repeated: undefined,
        first: undefined,
        last: undefined,
      },
      {
        event: 'agent.refused',
        address: '192.0.2.1',
        reason: 'tls',
        detail: 'CERT_REVOKED',
        serial: undefined,
        repeated: 999,
        first: '2026-12-01T10:00:00.000Z',
        last: '2026-12-01T10:00:09.990Z',
      },
    ]);
  });

  it(`audit - sources beyond ${MAX_REFUSAL_SOURCES} per window share one bucket, "*"`, async () => {
    const recorder = new AuditRecorder();
    const refusals = new RefusalAudit(createAuditLog(recorder.stream));
    const sources = MAX_REFUSAL_SOURCES + 500;
    for (let index = 0; index < sources; index++) {
      refusals.record('enrollment.refused', `2001:db8::${index.toString(16)}`, 'rate limited');
    }
    refusals.close();
    await waitFor(() => recorder.entries.length >= MAX_REFUSAL_SOURCES + 1, 'every line');
    assert.equal(recorder.entries.length, MAX_REFUSAL_SOURCES + 2);
    const others = recorder.entries.filter((entry) => entry['address'] === '*');
    assert.deepEqual(
      others.map((entry) => entry['repeated']),
      [undefined, 500 - 1],
    );
  });

  it('relay - 300 connect-and-hang-ups over the rate limit write a few audit lines, each connect counted once', async () => {
    const CONNECTS = 300;
    const ALLOWED_PER_MINUTE = 20;
    const pki: TestPki = await createTestPki();
    const t: TestRelay = await startTestRelay(pki, {
      limits: { connectionAttemptsPerMinute: ALLOWED_PER_MINUTE },
    });
    for (let index = 0; index < CONNECTS; index += 25) {
      await Promise.all(Array.from({ length: 25 }, () => connectAndHangUp(t.relay.agentPort)));
    }
    // Every connect is refused once: rate limited before TLS, or a handshake that never came.
    const refused = () => readMetric(t.relay, 'dmz_relay_connections_refused_total');
    await waitFor(async () => (await refused()) >= CONNECTS, `${CONNECTS} refusals counted`);
    assert.equal(await refused(), CONNECTS);
    // Stopping the relay closes the window: the summaries are written.
    await t.stop();
    const refusals = t.audit.entries.filter((entry) => entry.event === 'agent.refused');
    assert.ok(refusals.length <= 4, `${refusals.length} audit lines: ${JSON.stringify(refusals)}`);
    const limited = refusals.filter((entry) => entry['reason'] === 'RELAY_ERR_RATE_LIMITED');
    assert.deepEqual(
      limited.map((entry) => [entry['address'], entry['repeated']]),
      [
        ['127.0.0.1', undefined],
        ['127.0.0.1', CONNECTS - ALLOWED_PER_MINUTE - 1],
      ],
    );
    // Refused before TLS, so never audited a second time as a failed handshake.
    const handshakes = refusals.filter((entry) => entry['reason'] === 'tls');
    const failedHandshakes = handshakes.reduce(
      (sum, entry) => sum + Math.max(1, Number(entry['repeated'] ?? 1)),
      0,
    );
    assert.ok(failedHandshakes <= ALLOWED_PER_MINUTE, `${failedHandshakes} failed handshakes audited`);
  });
});

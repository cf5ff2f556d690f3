/**
 * The enrollment port as an operator watches it: in `auto` mode a port that cannot open (another
 * process holds it) is reported once in the log with what to do, shown on /healthz (`degraded`)
 * and in /metrics, retried, and opened as soon as it is free; in mode `on` it fails the start,
 * naming the listener and the key. And /metrics from the first scrape: process metrics, every
 * labelled counter at 0, the certificate and CRL expiry gauges.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino, type Logger } from 'pino';
import { openState } from '../../../pki/state.ts';
import { createAuditLog } from '../../../relay/server/audit.ts';
import { validateRelayConfig } from '../../../relay/server/config.ts';
import { createDebugLog } from '../../../relay/server/log-destination.ts';
import { startRelay, type RunningRelay } from '../../../relay/server/relay.ts';
import { CA_STATE_TRUST_DOMAIN, createCaState } from '../../support/ca-state.ts';
import { AuditRecorder } from '../../support/relay-harness.ts';
import { expectNever, waitFor } from '../../support/wait.ts';

/** The upkeep checks for tokens once a second and the switch retries once a second. */
const SWITCH_BOUND_MS = 5_000;

interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly [key: string]: unknown;
}

/** The relay's own debug log, its lines kept. */
function logRecorder(): { lines: LogLine[]; log: Logger } {
  const lines: LogLine[] = [];
  const log = createDebugLog('info', {
    write: (line: string) => void lines.push(JSON.parse(line) as LogLine),
  });
  return { lines, log };
}

describe('relay/server enrollment port and metrics', () => {
  let dir: string;
  let state: string;
  let blocker: Server;
  let busyPort: number;
  const running: RunningRelay[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dmz-enrollment-port-'));
    state = join(dir, 'state');
    await createCaState(state);
    blocker = createServer();
    busyPort = await new Promise<number>((resolve) =>
      blocker.listen(0, '127.0.0.1', () => resolve((blocker.address() as { port: number }).port)),
    );
  });
  after(async () => {
    await Promise.all(running.map((relay) => relay.close()));
    blocker.close();
    await rm(dir, { recursive: true, force: true });
  });

  const configFor = (mode: 'auto' | 'on' | 'off', enrollmentPort: number) =>
    validateRelayConfig(
      {
        trustDomain: CA_STATE_TRUST_DOMAIN,
        state,
        listen: {
          agents: { host: '127.0.0.1', port: 0 },
          admin: { host: '127.0.0.1', port: 0 },
          enrollment: { host: '127.0.0.1', port: enrollmentPort, mode },
        },
        log: { level: 'silent' },
        policy: [{ role: 'ot' }],
      },
      dir,
    );

  const health = async (relay: RunningRelay) =>
    (await (await fetch(`http://127.0.0.1:${relay.adminPort}/healthz`)).json()) as {
      status: string;
      enrollment: { state: string; problem?: string };
      problems?: string[];
    };
  const scrape = async (relay: RunningRelay) =>
    (await fetch(`http://127.0.0.1:${relay.adminPort}/metrics`)).text();

  it('enrollment - mode on with its port taken: the start fails, naming the listener and the key', async () => {
    await assert.rejects(
      startRelay({
        config: configFor('on', busyPort),
        audit: createAuditLog(new AuditRecorder().stream),
        log: pino({ level: 'silent' }),
      }),
      {
        code: 'RELAY_ERR_LISTEN',
        message: `the enrollment listener cannot listen on 127.0.0.1:${busyPort} (listen.enrollment): the port is in use`,
      },
    );
  });

  it('enrollment - auto mode with its port taken: one warning, /healthz degraded, /metrics unavailable; open once free', async () => {
    const { lines, log } = logRecorder();
    const relay = await startRelay({
      config: configFor('auto', busyPort),
      audit: createAuditLog(new AuditRecorder().stream),
      log,
    });
    running.push(relay);
    assert.equal((await health(relay)).enrollment.state, 'closed');
    assert.match(await scrape(relay), /^dmz_relay_enrollment_listener\{state="closed"\} 1$/m);

    // A token outstanding: the port is wanted, and cannot open.
    const opened = await openState(state);
    opened.store.recordToken({
      jti: 'AAAAAAAAAAAAAAAAAAAAAA',
      name: 'press-7',
      role: 'ot',
      createdAt: new Date(),
      expiresAt: new Date(Date.now() + 3_600_000),
    });
    opened.close();
    const degraded = await waitFor(
      async () => {
        const status = await health(relay);
        return status.status === 'degraded' ? status : undefined;
      },
      '/healthz degraded',
      SWITCH_BOUND_MS,
      50,
    );
    const problem = `the enrollment listener cannot listen on 127.0.0.1:${busyPort} (listen.enrollment): the port is in use; stop what holds it (ss -ltnp 'sport = :${busyPort}') or choose another listen.enrollment.port`;
    assert.deepEqual(degraded.enrollment, { mode: 'auto', state: 'unavailable', problem });
    assert.deepEqual(degraded.problems, [`enrollment: ${problem}`]);
    const text = await scrape(relay);
    assert.match(text, /^dmz_relay_enrollment_listener\{state="unavailable"\} 1$/m);
    assert.match(text, /^dmz_relay_enrollment_listener\{state="open"\} 0$/m);

    // Retried every second, reported once: no line per attempt, and never a stack.
    const warnings = () => lines.filter((line) => line.msg.startsWith('enrollment port unavailable'));
    await expectNever(() => warnings().length > 1, 'a second warning for the same problem', 2_500);
    assert.equal(warnings().length, 1);
    assert.equal(warnings()[0]?.['err'], undefined);

    await new Promise<void>((resolve) => blocker.close(() => resolve()));
    await waitFor(
      async () => (await health(relay)).enrollment.state === 'open',
      'the port opens',
      SWITCH_BOUND_MS,
      50,
    );
    assert.equal((await health(relay)).status, 'ok');
    assert.ok(lines.some((line) => line.msg === 'enrollment port open after all'));
  });

  it('metrics - process metrics, every labelled counter at 0 from the start, expiry gauges', async () => {
    const relay = await startRelay({
      config: configFor('off', 0),
      audit: createAuditLog(new AuditRecorder().stream),
      log: pino({ level: 'silent' }),
    });
    running.push(relay);
    const text = await scrape(relay);
    for (const series of [
      /^process_cpu_seconds_total \d/m,
      /^nodejs_eventloop_lag_seconds \d/m,
      /^dmz_relay_requests_total\{outcome="timeout"\} 0$/m,
      /^dmz_relay_frame_errors_total\{code="RELAY_ERR_FORBIDDEN"\} 0$/m,
      /^dmz_relay_connections_refused_total\{reason="tls"\} 0$/m,
      /^dmz_relay_disconnects_total\{reason="RELAY_ERR_REVOKED"\} 0$/m,
      /^dmz_relay_enrollments_total\{outcome="succeeded"\} 0$/m,
      /^dmz_relay_enrollments_total\{outcome="refused"\} 0$/m,
      /^dmz_relay_enrollment_listener\{state="off"\} 1$/m,
    ]) {
      assert.match(text, series);
    }
    const gauge = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
    const notAfter = async (file: string) =>
      Date.parse(new X509Certificate(await readFile(join(state, file), 'utf8')).validTo) / 1000;
    assert.equal(gauge('dmz_relay_ca_certificate_expiry_timestamp_seconds'), await notAfter('ca.pem'));
    assert.equal(gauge('dmz_relay_certificate_expiry_timestamp_seconds'), await notAfter('relay.pem'));
    const nextUpdate = gauge('dmz_relay_crl_next_update_timestamp_seconds');
    // The relay published a CRL valid for pki.crlValidity (7 days) at its start.
    assert.ok(Math.abs(nextUpdate - (Date.now() / 1000 + 7 * 86_400)) < 120, String(nextUpdate));
  });
});

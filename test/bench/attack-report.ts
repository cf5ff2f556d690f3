/**
 * The attack benchmark's report: the setup, one table per scenario, and the same as JSON. A
 * refused handshake, a cut that never came or a slow exit are results; only a scenario (or a
 * flood) that could not run at all is a failure.
 */
import { cpus, loadavg } from 'node:os';
import {
  HANDSHAKE_FLOOD,
  HONEST_PAIR,
  RELAY_CONNECTION_ATTEMPTS_PER_MINUTE,
  REVOCATION,
  SLOW_ENROLLMENT,
} from './attack-settings.ts';
import { formatGroupCode } from './client-hello.ts';
import type { FloodRun, FloodScenarioResults } from './flood-scenario.ts';
import type { GapWindow } from './honest-pair.ts';
import type { ReconnectOutcome, RevocationResults } from './revocation-scenario.ts';
import type { SlowClientEnd } from './slow-enrollment-client.ts';
import { formatTable } from './table.ts';
import type { Outcome } from './stats.ts';

export interface AttackReport {
  readonly setup: {
    readonly cpus: number;
    readonly cpuModel: string;
    readonly node: string;
    readonly openssl: string;
    /** 1-minute load average when the run started and when it ended. */
    readonly loadAverage: { readonly start: number; readonly end: number };
  };
  readonly handshakeFlood: Outcome<FloodScenarioResults>;
  readonly revocation: Outcome<RevocationResults>;
}

export function buildAttackReport(
  handshakeFlood: Outcome<FloodScenarioResults>,
  revocation: Outcome<RevocationResults>,
  loadAverageAtStart: number,
): AttackReport {
  return {
    setup: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? 'unknown',
      node: process.version,
      openssl: process.versions.openssl,
      loadAverage: { start: loadAverageAtStart, end: loadavg()[0] ?? 0 },
    },
    handshakeFlood,
    revocation,
  };
}

/** Every scenario or flood that failed to run, as `what: message`. */
export function listAttackFailures(report: AttackReport): string[] {
  const failures: string[] = [];
  if (!report.handshakeFlood.ok) failures.push(`handshake flood: ${report.handshakeFlood.error}`);
  else {
    for (const flood of report.handshakeFlood.value.floods) {
      if (!flood.ok) failures.push(`handshake flood ${flood.group}: ${flood.error}`);
    }
  }
  if (!report.revocation.ok) failures.push(`revocation: ${report.revocation.error}`);
  return failures;
}

export function formatAttackReport(report: AttackReport): string {
  const { setup } = report;
  const lines = [
    `setup: ${setup.cpus} x ${setup.cpuModel}, Node ${setup.node} (OpenSSL ${setup.openssl}), production ` +
      'dmz-relay with its own CA (dmz-pki init defaults), loopback, default relay limits',
    `load average (1 min): ${setup.loadAverage.start.toFixed(2)} at start, ${setup.loadAverage.end.toFixed(2)} at end`,
    '',
    ...formatFloodScenario(report.handshakeFlood),
    '',
    ...formatRevocationScenario(report.revocation),
  ];
  const failures = listAttackFailures(report);
  if (failures.length > 0) lines.push('', 'FAILED:', ...failures.map((failure) => `  ${failure}`));
  return lines.join('\n');
}

function formatFloodScenario(outcome: Outcome<FloodScenarioResults>): string[] {
  const { sourceAddresses, attemptsPerAddressPerMinute, durationMs, answerTimeoutMs } = HANDSHAKE_FLOOD;
  const heading = [
    'scenario A: handshake flood on the agent port (no client certificate), while an OT agent publishes',
    `  one point every ${HONEST_PAIR.publishIntervalMs} ms to an IT agent. Attacker: ${sourceAddresses.length} ` +
      `source addresses (${sourceAddresses.join(', ')}),`,
    `  each ${attemptsPerAddressPerMinute} attempts/min, paced (relay limit ${RELAY_CONNECTION_ATTEMPTS_PER_MINUTE}/min ` +
      `per address), ${durationMs / 1000} s per flood. Each attempt`,
    '  replays a ClientHello captured from Node (ecdhCurve = the group, TLS 1.3) and hangs up as soon as',
    '  the relay answers.',
  ];
  if (!outcome.ok) return [...heading, `  failed: ${outcome.error}`];
  const { baseline, floods } = outcome.value;
  const runs = floods.map((flood) => (flood.ok ? flood.value : undefined));
  const cell = (render: (run: FloodRun) => string) =>
    runs.map((run) => (run === undefined ? 'failed' : render(run)));
  const rows: string[][] = [
    ['', `baseline (${HONEST_PAIR.baselineMs / 1000} s)`, ...floods.map((flood) => `flood ${flood.group}`)],
    ['ClientHello offers only', '-', ...cell((run) => run.offeredGroups.map(formatGroupCode).join(' '))],
    ['handshakes attempted', '-', ...cell((run) => String(run.counts.attempted))],
    ['  answered (relay did key exchange + signature)', '-', ...cell((run) => String(run.counts.answered))],
    ['  refused by the relay (TLS alert)', '-', ...cell((run) => refusedText(run))],
    ['  dropped without a TLS answer', '-', ...cell((run) => String(run.counts.dropped))],
    [`  unanswered within ${answerTimeoutMs / 1000} s`, '-', ...cell((run) => String(run.counts.unanswered))],
    ['relay CPU s in the window', cpuText(baseline.cpu), ...cell((run) => cpuText(run.cpu))],
    [
      'relay CPU ms per handshake: all / net of baseline',
      '-',
      ...cell((run) => `${msText(run.relayCpuMsPerHandshake)} / ${netMsText(run.netRelayCpuMsPerHandshake)}`),
    ],
    [
      'honest pair worst gap (ms)',
      gapText(baseline.honestPair, 'maxMs'),
      ...cell((run) => gapText(run.honestPair, 'maxMs')),
    ],
    [
      'honest pair p99 gap (ms)',
      gapText(baseline.honestPair, 'p99Ms'),
      ...cell((run) => gapText(run.honestPair, 'p99Ms')),
    ],
    [
      'honest points delivered / lost',
      deliveredText(baseline.honestPair),
      ...cell((run) => deliveredText(run.honestPair)),
    ],
    [
      `legitimate agent connect at ${HANDSHAKE_FLOOD.legitimateConnectAfterMs / 1000} s (ms)`,
      '-',
      ...cell((run) =>
        run.legitimateConnect.ok
          ? run.legitimateConnect.value.ms.toFixed(0)
          : `FAILED: ${run.legitimateConnect.error}`,
      ),
    ],
  ];
  const failed = floods.flatMap((flood) =>
    flood.ok ? [] : [`  flood ${flood.group} failed: ${flood.error}`],
  );
  return [...heading, '', ...formatTable(rows), ...failed];
}

function formatRevocationScenario(outcome: Outcome<RevocationResults>): string[] {
  const heading = [
    'scenario B: revocation while a slow client holds the enrollment port (listen.enrollment.mode auto).',
    `  The slow client sends POST /v1/enroll with Content-Length ${SLOW_ENROLLMENT.declaredBodyBytes}, then one ` +
      `body byte every ${SLOW_ENROLLMENT.byteIntervalMs / 1000} s`,
    `  (it gives up after ${SLOW_ENROLLMENT.maxDurationMs / 1000} s); \`dmz-pki token revoke\` leaves no token ` +
      'outstanding, then `dmz-pki revoke victim`.',
  ];
  if (!outcome.ok) return [...heading, `  failed: ${outcome.error}`];
  const result = outcome.value;
  const cutText = (ms: number | undefined) =>
    ms === undefined ? `not within ${REVOCATION.cutTimeoutMs / 1000} s` : seconds(ms);
  const rows: (readonly [string, string])[] = [
    [
      'enrollment port refuses connections, after `token revoke`',
      result.listenerClosedAfterMs === undefined
        ? `still accepting after ${SLOW_ENROLLMENT.listenerCloseTimeoutMs / 1000} s`
        : seconds(result.listenerClosedAfterMs),
    ],
    [
      'slow client still attached when `dmz-pki revoke` ran',
      result.slowClientAttachedAtRevoke ? 'yes' : 'no',
    ],
    ['`dmz-pki revoke` spawn to exit', seconds(result.revokeCommandMs)],
    ['(a) revocation commit (store revoked_at) -> live connection cut', cutText(result.commitToCutMs)],
    ['(b) `dmz-pki revoke` spawn -> live connection cut', cutText(result.commandStartToCutMs)],
    ['    close the victim saw', result.cutBy ?? '-'],
    [
      `revoked certificate's TLS handshake, ${REVOCATION.earlyReconnectAfterMs / 1000} s after the command`,
      reconnectText(result.handshakeEarly),
    ],
    [
      '(c) revoked certificate connects again, after the cut (or its wait)',
      reconnectText(result.reconnectAfterCut),
    ],
    ['first slow client ended', slowEndText(result.firstSlowClient)],
    [
      '(d) SIGTERM -> relay exit, slow client attached',
      result.terminateMs === undefined
        ? `not within ${REVOCATION.terminateTimeoutMs / 1000} s`
        : seconds(result.terminateMs),
    ],
    [
      '    that slow client: attached at SIGTERM for',
      seconds(result.terminateSlowClientAttachedMs) +
        (result.terminateWithFreshSlowClient ? ' (a second one, on a third token)' : ' (the first one)'),
    ],
    ['    and it ended', slowEndText(result.terminateSlowClientEnd, result.terminateSlowClientAttachedMs)],
  ];
  const width = Math.max(...rows.map(([label]) => label.length));
  return [...heading, '', ...rows.map(([label, value]) => `${label.padEnd(width)}  ${value}`)];
}

function refusedText(run: FloodRun): string {
  const alerts = Object.entries(run.counts.alerts).map(([name, count]) => `${name} ${count}`);
  return alerts.length === 0 ? String(run.counts.refused) : `${run.counts.refused} (${alerts.join(', ')})`;
}

/** Who ended a slow client and when: after its attach, and after SIGTERM when `attachedAtTerminateMs` is given. */
function slowEndText(end: SlowClientEnd | undefined, attachedAtTerminateMs?: number): string {
  if (end === undefined) return 'still attached';
  const sinceTerminate =
    attachedAtTerminateMs === undefined
      ? ''
      : `, ${seconds(end.afterMs - attachedAtTerminateMs)} after SIGTERM`;
  const answer = end.answer === undefined ? 'no HTTP answer' : end.answer;
  return `by the ${end.by} ${seconds(end.afterMs)} after it attached${sinceTerminate} (${answer}, ${end.bodyBytesSent} body bytes sent)`;
}

/** Net of the baseline, a cheap handshake's cost is lost in the honest pair's own variation. */
function netMsText(ms: number | undefined): string {
  return ms !== undefined && ms <= 0 ? '~0 (noise)' : msText(ms);
}

function msText(ms: number | undefined): string {
  return ms === undefined ? 'n/a' : ms.toFixed(1);
}

function cpuText(cpu: { seconds: number; relayCpuSeconds: number }): string {
  return `${cpu.relayCpuSeconds.toFixed(2)} of ${cpu.seconds.toFixed(1)}`;
}

function gapText(window: GapWindow, key: 'maxMs' | 'p99Ms'): string {
  return window.gaps[key].toFixed(1);
}

function deliveredText(window: GapWindow): string {
  return `${window.delivered} / ${window.lost}`;
}

function reconnectText(outcome: ReconnectOutcome): string {
  return outcome.admitted ? `YES (${outcome.detail})` : `refused (${outcome.detail})`;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

/**
 * The report of `npm run bench:runtime`: the rate search, the replay catch-up and the bare ceiling
 * of one run, as plain-text tables (the shared formatter), with the targets of issue 6 checked.
 * Every ratio compares two figures of the same run: on a shared machine the absolute ones drift.
 */
import type { DurableAppendResult } from './durable-append.ts';
import { endToEndRate, type CatchUp, type LoadShape, type SteadyStep } from './runtime-phases.ts';
import type { Outcome } from './stats.ts';
import { formatCount, formatRatio, formatTable } from './table.ts';

/** Issue 6: at least this many durable points/s end to end... */
export const TARGET_POINTS_PER_SECOND = 200_000;
/** ...and a replay catch-up at least this many times the live rate. */
export const TARGET_CATCH_UP_RATIO = 5;

export interface RuntimeReport {
  readonly node: string;
  readonly cores: number;
  readonly loadAverageAtStart: number;
  readonly loadAverageAtEnd: number;
  readonly setup: string;
  readonly steady: readonly Outcome<SteadyStep>[] | undefined;
  readonly catchUp: Outcome<CatchUp> | undefined;
  readonly ceiling: Outcome<{ readonly shape: LoadShape; readonly result: DurableAppendResult }> | undefined;
}

/** The highest step the sink kept up with. */
export function bestSteadyStep(report: RuntimeReport): SteadyStep | undefined {
  let best: SteadyStep | undefined;
  for (const step of report.steady ?? []) {
    if (
      step.ok &&
      step.value.sustained &&
      (best === undefined || endToEndRate(step.value) > endToEndRate(best))
    )
      best = step.value;
  }
  return best;
}

export function listRuntimeFailures(report: RuntimeReport): string[] {
  const parts = [...(report.steady ?? []), report.catchUp, report.ceiling];
  return parts.flatMap((part) => (part !== undefined && !part.ok ? [part.error] : []));
}

const cores = (value: number) => value.toFixed(2);
/** Cores, and the CPU microseconds that makes per point. */
const cpuPerPoint = (value: number, pointsPerSecond: number) =>
  `${cores(value)} (${((value * 1e6) / pointsPerSecond).toFixed(1)})`;

function steadyTable(steps: readonly Outcome<SteadyStep>[]): string[] {
  const rows = [
    [
      'points',
      'offered/s',
      'logged/s',
      'sent live',
      'in sink/s',
      'behind at end',
      'log B/pt',
      'sink B/pt',
      'CPU relay (µs/pt)',
      'CPU OT (µs/pt)',
      'CPU IT (µs/pt)',
      'machine busy',
      'keeps up',
    ],
  ];
  for (const outcome of steps) {
    if (!outcome.ok) {
      rows.push(['failed', outcome.error]);
      continue;
    }
    const step = outcome.value;
    rows.push([
      String(step.shape.points),
      formatCount(step.offered),
      formatCount(step.logged),
      `${((100 * step.sentLive) / step.logged).toFixed(0)}%`,
      formatCount(step.inSink),
      `${step.behindSeconds.toFixed(1)} s`,
      step.logBytesPerPoint.toFixed(1),
      step.sinkBytesPerPoint.toFixed(1),
      cpuPerPoint(step.cpu.relay, step.inSink),
      cpuPerPoint(step.cpu.ot, step.logged),
      cpuPerPoint(step.cpu.it, step.inSink),
      cores(step.cpu.machine),
      step.sustained ? 'yes' : 'no',
    ]);
  }
  return formatTable(rows);
}

function catchUpLines(outcome: Outcome<CatchUp>): string[] {
  if (!outcome.ok) return [`failed: ${outcome.error}`];
  const run = outcome.value;
  const ratio = run.catchUpRate === undefined ? undefined : run.catchUpRate / run.liveRate;
  const rows = [
    [
      'live rate/s',
      'backlog',
      'catch-up/s',
      'vs live',
      'IT start',
      'to live',
      'CPU relay (µs/pt)',
      'CPU OT (µs/pt)',
      'CPU IT (µs/pt)',
      'machine busy',
    ],
    [
      formatCount(run.liveRate),
      formatCount(run.backlogAtRestart),
      run.catchUpRate === undefined ? 'n/a' : formatCount(run.catchUpRate),
      formatRatio(ratio),
      `${run.startSeconds.toFixed(1)} s`,
      run.catchUpSeconds === undefined ? 'not live' : `${run.catchUpSeconds.toFixed(1)} s`,
      ...(run.cpu === undefined || run.catchUpRate === undefined
        ? ['n/a', 'n/a', 'n/a', 'n/a']
        : [
            cpuPerPoint(run.cpu.relay, run.catchUpRate),
            cpuPerPoint(run.cpu.ot, run.catchUpRate),
            cpuPerPoint(run.cpu.it, run.catchUpRate),
            cores(run.cpu.machine),
          ]),
    ],
  ];
  return [
    `Replay catch-up: ${run.shape.points} points x 1,000/s, batch ${run.shape.batch}; the IT agent stopped (SIGTERM) for ${run.outageSeconds} s, then started again`,
    '',
    ...formatTable(rows).map((line) => `  ${line}`),
    '',
    "  backlog: points in the OT log and not in the sink when the restarted IT agent's link came up;",
    '  catch-up/s: points into the sink from then until it was live again (at most one batch period + 1 s',
    '  behind), the backlog and what was logged meanwhile; IT start: spawn to link.',
    `  target: catch-up >= ${TARGET_CATCH_UP_RATIO}x the live rate: ${ratio !== undefined && ratio >= TARGET_CATCH_UP_RATIO ? 'met' : 'not met'}`,
  ];
}

function ceilingLines(
  outcome: NonNullable<RuntimeReport['ceiling']>,
  best: SteadyStep | undefined,
): string[] {
  if (!outcome.ok) return [`failed: ${outcome.error}`];
  const { shape, result } = outcome.value;
  const rows = [
    ['path', 'points/s', 'vs raw'],
    ["raw append + fdatasync, the log's bytes per sync", formatCount(result.rawSameBytes), '1.00x'],
    [
      'OT log alone (appends resolved after fdatasync)',
      formatCount(result.log),
      formatRatio(result.log / result.rawSameBytes),
    ],
  ];
  if (best !== undefined) {
    rows.push([
      'end to end, best step that kept up',
      formatCount(endToEndRate(best)),
      formatRatio(endToEndRate(best) / result.rawSameBytes),
    ]);
  }
  return [
    `Bare ceiling, same disk, same run: ${shape.points} streams x ${shape.batch} encoded points per append, ${shape.points} appends at once (as the simulator writes)`,
    '',
    ...formatTable(rows).map((line) => `  ${line}`),
    '',
    `  the log wrote ${formatCount(result.bytesPerSync)} bytes (${formatCount(result.pointsPerSync)} points) per fdatasync, ${result.diskBytesPerPoint.toFixed(1)} bytes on disk per point`,
  ];
}

export function formatRuntimeReport(report: RuntimeReport): string {
  const best = bestSteadyStep(report);
  const lines = [
    `Agent runtime benchmark (Node ${report.node}, ${report.cores} cores; load average ${report.loadAverageAtStart.toFixed(2)} at start, ${report.loadAverageAtEnd.toFixed(2)} at end)`,
    `  ${report.setup}`,
    '',
  ];
  if (report.steady !== undefined) {
    const batch = report.steady.find((step) => step.ok)?.value.shape.batch;
    lines.push(
      `End to end: simulator -> OT log (fdatasync) -> relay -> IT JSON Lines sink (fdatasync); 1 ms interval, batch ${batch ?? '?'}`,
      '',
      ...steadyTable(report.steady).map((line) => `  ${line}`),
      '',
      '  points x 1,000/s offered; logged: appended durably; sent live: of those, sent at once (the rest by replay);',
      '  in sink: durable in the sink; behind at end: log minus sink, in seconds of the offered rate;',
      '  CPU in cores (1.00 = one core all the time) and CPU microseconds per point (OT: per point logged);',
      "  machine busy: cores used by every process on the machine, ours and others'.",
      `  best that kept up: ${best === undefined ? 'none' : `${formatCount(endToEndRate(best))} points/s durable end to end (the lower of logged and in sink)`}; target >= ${formatCount(TARGET_POINTS_PER_SECOND)}: ${best !== undefined && endToEndRate(best) >= TARGET_POINTS_PER_SECOND ? 'met' : 'not met'}`,
      '',
    );
  }
  if (report.catchUp !== undefined) lines.push(...catchUpLines(report.catchUp), '');
  if (report.ceiling !== undefined) lines.push(...ceilingLines(report.ceiling, best), '');
  return lines.join('\n').trimEnd();
}

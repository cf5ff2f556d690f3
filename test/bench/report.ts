/**
 * The benchmark's report: one table of relay against mosquitto, the ratios, the targets, and the
 * details a reader needs to trust the numbers (counts, losses, the setup). Also as JSON.
 */
import { cpus, loadavg } from 'node:os';
import type { MosquittoResults } from './mosquitto-workload.ts';
import { BATCH_POINTS, FAN_OUT_SUBSCRIBERS, PAYLOAD_BYTES } from './settings.ts';
import type { LatencyResult, Outcome, SystemResults, ThroughputResult } from './stats.ts';

/** The product's targets (DESIGN.md): throughput at least twice mosquitto's, p99 under a millisecond. */
export const TARGETS = { minThroughputRatio: 2, maxRelayP99Ms: 1 } as const;

export interface BenchReport {
  readonly setup: {
    readonly cpus: number;
    readonly cpuModel: string;
    readonly node: string;
    readonly mosquitto: string;
    readonly payloadBytes: number;
    readonly batchPoints: number;
    readonly fanOutSubscribers: number;
    /** 1-minute load average when the run started and when it ended: other work on the machine shows here. */
    readonly loadAverage: { readonly start: number; readonly end: number };
  };
  readonly relay: SystemResults;
  readonly mosquitto: MosquittoResults;
}

export function buildReport(
  relay: SystemResults,
  mosquitto: MosquittoResults,
  loadAverageAtStart: number,
): BenchReport {
  return {
    setup: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? 'unknown',
      node: process.version,
      mosquitto: mosquitto.version,
      payloadBytes: PAYLOAD_BYTES,
      batchPoints: BATCH_POINTS,
      fanOutSubscribers: FAN_OUT_SUBSCRIBERS,
      loadAverage: { start: loadAverageAtStart, end: loadavg()[0] ?? 0 },
    },
    relay,
    mosquitto,
  };
}

/** Every workload that failed to run, as `system workload: message`. */
export function listFailures(report: BenchReport): string[] {
  const failures: string[] = [];
  const systems = { relay: report.relay, mosquitto: report.mosquitto } as const;
  for (const [system, results] of Object.entries(systems)) {
    for (const [workload, outcome] of Object.entries(results)) {
      if (isOutcome(outcome) && !outcome.ok) failures.push(`${system} ${workload}: ${outcome.error}`);
    }
  }
  return failures;
}

export function formatReport(report: BenchReport): string {
  const { relay, mosquitto, setup } = report;
  const fan = `1 -> ${setup.fanOutSubscribers} (sum)`;
  const rows: string[][] = [
    ['workload', 'relay', 'mosquitto', 'relay/mosquitto', 'target'],
    throughputRow('points/s 1 -> 1', relay.oneToOne, mosquitto.oneToOne),
    throughputRow(`points/s ${fan}`, relay.fanOut, mosquitto.fanOut),
    latencyRow('closed-loop p50 (ms)', relay.latency, mosquitto.latency, 'p50Ms', ''),
    latencyRow('closed-loop p99 (ms)', relay.latency, mosquitto.latency, 'p99Ms', p99Verdict(relay.latency)),
    latencyRow('closed-loop max (ms)', relay.latency, mosquitto.latency, 'maxMs', ''),
  ];
  const lines = [
    `setup: ${setup.cpus} x ${setup.cpuModel}, Node ${setup.node}, mosquitto ${setup.mosquitto}, loopback, ` +
      `mTLS (TLS 1.3, RSA-2048), payload ${setup.payloadBytes} B/point, relay batch ${setup.batchPoints} ` +
      `points/frame, mosquitto QoS 0 one point/message`,
    `load average (1 min): ${setup.loadAverage.start.toFixed(2)} at start, ${setup.loadAverage.end.toFixed(2)} ` +
      `at end (the benchmark itself keeps about ${setup.cpus} busy; more means other work shared the machine)`,
    '',
    ...formatTable(rows),
    '',
    'details:',
    ...detailLines('relay', relay),
    ...detailLines('mosquitto', mosquitto),
    `  stdio pipe round trip via cat (inside the mosquitto latency loop twice): ${latencyText(mosquitto.pipeRoundTrip)}`,
    '  relay latency: publish -> deliver, one way, OT and IT clients in one process (one clock).',
    '  mosquitto latency: line into mosquitto_pub -l -> line out of mosquitto_sub, through two stdio pipes.',
  ];
  const failures = listFailures(report);
  if (failures.length > 0) lines.push('', 'FAILED workloads:', ...failures.map((failure) => `  ${failure}`));
  return lines.join('\n');
}

function throughputRow(
  name: string,
  relay: Outcome<ThroughputResult>,
  mosquitto: Outcome<ThroughputResult>,
): string[] {
  const ratio =
    relay.ok && mosquitto.ok ? relay.value.pointsPerSecond / mosquitto.value.pointsPerSecond : undefined;
  const verdict = ratio === undefined ? 'n/a' : ratio >= TARGETS.minThroughputRatio ? 'met' : 'NOT met';
  return [
    name,
    relay.ok ? formatCount(relay.value.pointsPerSecond) : 'failed',
    mosquitto.ok ? formatCount(mosquitto.value.pointsPerSecond) : 'failed',
    ratio === undefined ? 'n/a' : `${ratio.toFixed(1)}x`,
    `>= ${TARGETS.minThroughputRatio}x: ${verdict}`,
  ];
}

function latencyRow(
  name: string,
  relay: Outcome<LatencyResult>,
  mosquitto: Outcome<LatencyResult>,
  key: 'p50Ms' | 'p99Ms' | 'maxMs',
  target: string,
): string[] {
  const cell = (outcome: Outcome<LatencyResult>) => (outcome.ok ? outcome.value[key].toFixed(3) : 'failed');
  return [name, cell(relay), cell(mosquitto), '', target];
}

function p99Verdict(latency: Outcome<LatencyResult>): string {
  const verdict = !latency.ok ? 'n/a' : latency.value.p99Ms < TARGETS.maxRelayP99Ms ? 'met' : 'NOT met';
  return `relay < ${TARGETS.maxRelayP99Ms} ms: ${verdict}`;
}

function detailLines(system: string, results: SystemResults): string[] {
  const throughput = (outcome: Outcome<ThroughputResult>) =>
    outcome.ok
      ? `${formatCount(outcome.value.published)} published, ${formatCount(outcome.value.delivered)} delivered ` +
        `to ${outcome.value.subscribers}, ${formatCount(outcome.value.undelivered)} not delivered by the end, ${outcome.value.seconds.toFixed(2)} s`
      : `failed: ${outcome.error}`;
  return [
    `  ${system} 1 -> 1: ${throughput(results.oneToOne)}`,
    `  ${system} fan-out: ${throughput(results.fanOut)}`,
    `  ${system} latency: ${latencyText(results.latency)}`,
  ];
}

function latencyText(outcome: Outcome<LatencyResult>): string {
  if (!outcome.ok) return `failed: ${outcome.error}`;
  const { samples, p50Ms, p99Ms, maxMs } = outcome.value;
  return `${samples} samples, p50 ${p50Ms.toFixed(3)} ms, p99 ${p99Ms.toFixed(3)} ms, max ${maxMs.toFixed(3)} ms`;
}

function formatCount(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

/** Rows as aligned columns: the first left-aligned, the others right-aligned. */
export function formatTable(rows: readonly string[][]): string[] {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]?.length ?? 0)));
  return rows.map((row) =>
    row
      .map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!)))
      .join('  ')
      .trimEnd(),
  );
}

function isOutcome(value: unknown): value is Outcome<unknown> {
  return typeof value === 'object' && value !== null && 'ok' in value;
}

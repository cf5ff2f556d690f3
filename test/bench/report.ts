/**
 * The benchmark's report: the setup (with the machine's load), the fair table first (the same
 * bytes per message on every system, ratios from this run), what batching alone makes of it,
 * latency under load, what a connection costs, the restart storm, and the targets. Also as JSON.
 */
import { cpus, loadavg } from 'node:os';
import type { ConnectionCost } from './connection-cost.ts';
import type { FairCell } from './fair-matrix.ts';
import type { LatencyCell } from './load-latency.ts';
import type { PhaseResult } from './phase.ts';
import type { StormResult } from './reconnect-storm.ts';
import { FAN_OUT_SUBSCRIBERS, PAYLOAD_BYTES } from './settings.ts';
import type { Outcome } from './stats.ts';
import { connectionSection, latencySection, stormSection } from './report-sections.ts';
import { SHORT_NAMES, SYSTEM_LABELS, type SystemName } from './systems.ts';
import { formatCount, formatRatio, formatTable } from './table.ts';
import { judgeTargets, type Verdict } from './targets.ts';

export interface BenchSetup {
  readonly cpus: number;
  readonly cpuModel: string;
  readonly node: string;
  readonly versions: Readonly<Record<string, string>>;
  readonly payloadBytes: number;
  readonly fanOutSubscribers: number;
  /** 1-minute load average when the run started and when it ended: other work shows here. */
  readonly loadAverage: { readonly start: number; readonly end: number };
  /** The settings this run used (run.ts options applied). */
  readonly settings: unknown;
}

export interface BenchReport {
  readonly setup: BenchSetup;
  readonly fair: readonly FairCell[];
  readonly latency: readonly LatencyCell[];
  readonly connections: readonly Outcome<ConnectionCost>[];
  /** The restart storms: ticket keys kept (resumed handshakes), then removed (full ones). */
  readonly storms: readonly Outcome<StormResult>[];
  readonly targets: readonly Verdict[];
}

export function buildReport(
  parts: Omit<BenchReport, 'setup' | 'targets'>,
  setup: Omit<
    BenchSetup,
    'cpus' | 'cpuModel' | 'node' | 'payloadBytes' | 'fanOutSubscribers' | 'loadAverage'
  >,
  loadAverageAtStart: number,
): BenchReport {
  return {
    setup: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? 'unknown',
      node: process.version,
      payloadBytes: PAYLOAD_BYTES,
      fanOutSubscribers: FAN_OUT_SUBSCRIBERS,
      loadAverage: { start: loadAverageAtStart, end: loadavg()[0] ?? 0 },
      ...setup,
    },
    ...parts,
    targets: judgeTargets(parts),
  };
}

/** Every measurement that failed to run, as `what: message`. */
export function listFailures(report: BenchReport): string[] {
  return [
    ...report.fair.flatMap((cell) =>
      cell.result.ok
        ? []
        : [
            `fair ${cell.system} ${cell.pointsPerMessage} points 1 -> ${cell.subscribers}: ${cell.result.error}`,
          ],
    ),
    ...report.latency.flatMap((cell) =>
      cell.result.ok
        ? []
        : [`latency ${cell.system} 1 -> ${cell.subscribers} at ${cell.load}: ${cell.result.error}`],
    ),
    ...report.connections.flatMap((outcome) => (outcome.ok ? [] : [`connections: ${outcome.error}`])),
    ...report.storms.flatMap((storm) => (storm.ok ? [] : [`storm: ${storm.error}`])),
  ];
}

export function formatReport(report: BenchReport): string {
  const { setup } = report;
  const versions = Object.entries(setup.versions)
    .map(([name, version]) => `${name} ${version}`)
    .join(', ');
  const lines = [
    `setup: ${setup.cpus} x ${setup.cpuModel}, Node ${setup.node}, ${versions}; loopback, mTLS (TLS 1.3, ` +
      `RSA-2048 certificates, X25519) on every system; point = ${setup.payloadBytes} B`,
    `load average (1 min): ${setup.loadAverage.start.toFixed(2)} at start, ${setup.loadAverage.end.toFixed(2)} at end ` +
      `(the benchmark keeps about ${setup.cpus} busy; more means other work shared the machine)`,
    `systems: ${Object.values(SYSTEM_LABELS).join('; ')}`,
  ];
  if (report.fair.length > 0) lines.push('', ...fairSection(report.fair));
  if (report.latency.length > 0) lines.push('', ...latencySection(report.latency));
  if (report.connections.length > 0) lines.push('', ...connectionSection(report.connections));
  for (const storm of report.storms) lines.push('', ...stormSection(storm));
  lines.push(
    '',
    'targets:',
    ...formatTable([
      ['target', 'measured', 'verdict'],
      ...report.targets.map((verdict) => [
        verdict.target,
        verdict.measured,
        verdict.met === undefined ? 'not measured' : verdict.met ? 'met' : 'NOT met',
      ]),
    ]).map((line) => `  ${line}`),
  );
  const failures = listFailures(report);
  if (failures.length > 0) lines.push('', 'FAILED:', ...failures.map((failure) => `  ${failure}`));
  return lines.join('\n');
}

function fairSection(cells: readonly FairCell[]): string[] {
  const systems = [...new Set(cells.map((cell) => cell.system))];
  const groups = [...new Set(cells.map((cell) => `${cell.pointsPerMessage}|${cell.subscribers}`))];
  const value = (system: SystemName, points: number, subscribers: number) => {
    const cell = cells.find(
      (candidate) =>
        candidate.system === system &&
        candidate.pointsPerMessage === points &&
        candidate.subscribers === subscribers,
    );
    return cell?.result.ok === true ? cell.result.value : undefined;
  };
  const others = systems.filter((system) => system !== 'relay');
  const headline: string[][] = [
    [
      'points/message (bytes)',
      'fan-out',
      ...systems.map((system) => `${SHORT_NAMES[system]} points/s`),
      ...(systems.includes('relay') ? others.map((system) => `relay/${SHORT_NAMES[system]}`) : []),
    ],
  ];
  const detail: string[][] = [
    [
      'system',
      'points/msg',
      'fan-out',
      'points/s',
      'MB/s',
      'msgs/s',
      'CPU server',
      'publisher',
      'subscriber mean/max',
      'bench',
      'server µs/delivery',
      'lost',
    ],
  ];
  for (const group of groups) {
    const [points, subscribers] = group.split('|').map(Number) as [number, number];
    const bytes = cells.find((cell) => cell.pointsPerMessage === points)?.messageBytes ?? 0;
    const relay = value('relay', points, subscribers);
    headline.push([
      `${points} (${formatCount(bytes)} B)`,
      `1 -> ${subscribers}`,
      ...systems.map((system) => {
        const result = value(system, points, subscribers);
        return result === undefined ? 'failed' : formatCount(result.pointsPerSecond);
      }),
      ...(systems.includes('relay')
        ? others.map((system) => {
            const other = value(system, points, subscribers);
            return formatRatio(
              relay === undefined || other === undefined
                ? undefined
                : relay.pointsPerSecond / other.pointsPerSecond,
            );
          })
        : []),
    ]);
    for (const system of systems) {
      const result = value(system, points, subscribers);
      detail.push(
        result === undefined
          ? [SHORT_NAMES[system], String(points), `1 -> ${subscribers}`, 'failed']
          : detailRow(system, points, result),
      );
    }
  }
  const lines = [
    'FAIR: the same bytes per message on every system (one batch of points = one relay frame = one MQTT',
    'PUBLISH = one NATS PUB), delivered points/s summed over subscribers, each subscriber its own process:',
    ...formatTable(headline).map((line) => `  ${line}`),
    '',
    'per system: throughput and CPU per process during the timed part (cores; 1.00 = one core busy):',
    ...formatTable(detail).map((line) => `  ${line}`),
  ];
  const batched = batchedRows(cells, value);
  if (batched.length > 0) {
    lines.push(
      '',
      `BATCHED (not like for like): the relay at its own batch of ${Math.max(...cells.map((cell) => cell.pointsPerMessage))} points/frame against`,
      'mosquitto (C clients) at one point per message, the way the old headline compared them; the fair',
      'table above shows what of that is batching:',
      ...formatTable([['fan-out', 'relay points/s', 'mosquitto C points/s', 'ratio'], ...batched]).map(
        (line) => `  ${line}`,
      ),
    );
  }
  return lines;
}

function detailRow(system: SystemName, points: number, result: PhaseResult): string[] {
  const { cpu } = result;
  return [
    SHORT_NAMES[system],
    String(points),
    `1 -> ${result.subscribers}`,
    formatCount(result.pointsPerSecond),
    (result.bytesPerSecond / 1e6).toFixed(1),
    formatCount(result.messagesPerSecond),
    cpu.server.toFixed(2),
    cpu.publisher.toFixed(2),
    `${cpu.subscriberMean.toFixed(2)}/${cpu.subscriberMax.toFixed(2)}`,
    cpu.bench.toFixed(2),
    // Server CPU per message delivered to one subscriber: what a message costs it, whatever its load.
    ((cpu.server * 1e6) / Math.max(1, result.messagesPerSecond * result.subscribers)).toFixed(1),
    formatCount(result.undelivered + result.malformed),
  ];
}

function batchedRows(
  cells: readonly FairCell[],
  value: (system: SystemName, points: number, subscribers: number) => PhaseResult | undefined,
): string[][] {
  const largest = Math.max(...cells.map((cell) => cell.pointsPerMessage));
  const smallest = Math.min(...cells.map((cell) => cell.pointsPerMessage));
  if (largest === smallest) return [];
  return [...new Set(cells.map((cell) => cell.subscribers))].flatMap((subscribers) => {
    const relay = value('relay', largest, subscribers);
    const mosquitto = value('mosquitto-c', smallest, subscribers);
    if (relay === undefined || mosquitto === undefined) return [];
    return [
      [
        `1 -> ${subscribers}`,
        formatCount(relay.pointsPerSecond),
        formatCount(mosquitto.pointsPerSecond),
        formatRatio(relay.pointsPerSecond / mosquitto.pointsPerSecond),
      ],
    ];
  });
}

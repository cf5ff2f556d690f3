/**
 * The command line of `npm run bench` (run.ts): which parts run, on which systems, at which sizes.
 * The defaults are settings.ts's; every option narrows or resizes a part, none adds an unbounded one.
 */
import { resolve } from 'node:path';
import {
  CONNECTIONS,
  LOAD_LATENCY,
  POINTS_PER_MESSAGE,
  THROUGHPUT,
  type ConnectionSettings,
  type LoadLatencySettings,
  type ThroughputSettings,
} from './settings.ts';
import { isSystemName, SYSTEM_NAMES, type SystemName } from './systems.ts';

export const PART_NAMES = ['fair', 'latency', 'connections', 'storm'] as const;
export type PartName = (typeof PART_NAMES)[number];

export const USAGE = `usage: npm run bench:relay -- [options]   (the first part of npm run bench)
  --json                    the report as JSON on stdout
  --relay-cpu-prof DIR      CPU profiles of the relay processes (node --cpu-prof) into DIR
  --parts LIST              of ${PART_NAMES.join(',')} (default: all)
  --systems LIST            fair table systems, of ${SYSTEM_NAMES.join(',')} (default: all)
  --latency-systems LIST    latency systems (default: relay,mosquitto-c)
  --points LIST             points per message in the fair table (default: ${POINTS_PER_MESSAGE.join(',')})
  --measure-ms N            timed part of each throughput phase (default: ${THROUGHPUT.measureMs})
  --latency-ms N            timed part of each latency phase (default: ${LOAD_LATENCY.measureMs})
  --agents N                idle agents at the last connection step and in the storm (default: ${CONNECTIONS.steps.at(-1) ?? 0})
  --quick                   a smoke run: 128 points only, 1 s phases, 1000 agents`;

export interface RunOptions {
  readonly json: boolean;
  readonly relayCpuProfileDir: string | undefined;
  readonly parts: ReadonlySet<PartName>;
  readonly systems: readonly SystemName[];
  readonly latencySystems: readonly SystemName[];
  readonly points: readonly number[];
  readonly throughput: ThroughputSettings;
  readonly latency: LoadLatencySettings;
  readonly connections: ConnectionSettings;
}

/** The options, or the text to print (usage, or an error with the usage). */
export function parseRunOptions(
  args: readonly string[],
): RunOptions | { readonly message: string; readonly ok: boolean } {
  let json = false;
  let relayCpuProfileDir: string | undefined;
  let parts: PartName[] = [...PART_NAMES];
  let systems: SystemName[] = [...SYSTEM_NAMES];
  let latencySystems: SystemName[] = ['relay', 'mosquitto-c'];
  let points: number[] = [...POINTS_PER_MESSAGE];
  let measureMs = THROUGHPUT.measureMs;
  let latencyMs = LOAD_LATENCY.measureMs;
  let agents = CONNECTIONS.steps.at(-1) ?? 0;
  let quick = false;
  const fail = (message: string) => ({ message: `${message}\n${USAGE}`, ok: false });
  for (let index = 0; index < args.length; index++) {
    const arg = args[index]!;
    const value = args[index + 1];
    const takesValue = arg !== '--json' && arg !== '--quick' && arg !== '--help' && arg !== '-h';
    if (takesValue && value === undefined) return fail(`${arg} needs a value`);
    if (takesValue) index++;
    const list = () => (value ?? '').split(',').filter((item) => item !== '');
    const count = (minimum: number) => {
      const parsed = Number(value);
      return Number.isInteger(parsed) && parsed >= minimum ? parsed : undefined;
    };
    switch (arg) {
      case '--json':
        json = true;
        break;
      case '--quick':
        quick = true;
        break;
      case '--help':
      case '-h':
        return { message: USAGE, ok: true };
      case '--relay-cpu-prof':
        relayCpuProfileDir = resolve(value!);
        break;
      case '--parts': {
        const named = list();
        if (!named.every((part): part is PartName => (PART_NAMES as readonly string[]).includes(part))) {
          return fail(`--parts: one of ${PART_NAMES.join(', ')}`);
        }
        parts = named;
        break;
      }
      case '--systems':
      case '--latency-systems': {
        const named = list();
        if (!named.every(isSystemName)) return fail(`${arg}: one of ${SYSTEM_NAMES.join(', ')}`);
        if (arg === '--systems') systems = named;
        else latencySystems = named;
        break;
      }
      case '--points': {
        const sizes = list().map(Number);
        if (
          sizes.length === 0 ||
          !sizes.every((size) => Number.isInteger(size) && size >= 1 && size <= 4096)
        ) {
          return fail('--points: whole numbers from 1 to 4096');
        }
        points = sizes;
        break;
      }
      case '--measure-ms':
      case '--latency-ms': {
        const parsed = count(100);
        if (parsed === undefined || parsed > 60_000) return fail(`${arg}: 100 to 60000`);
        if (arg === '--measure-ms') measureMs = parsed;
        else latencyMs = parsed;
        break;
      }
      case '--agents': {
        const parsed = count(1);
        if (parsed === undefined || parsed > 15_000)
          return fail('--agents: 1 to 15000 (the open-files limit)');
        agents = parsed;
        break;
      }
      default:
        return fail(`unknown argument ${arg}`);
    }
  }
  if (quick) {
    points = [128];
    measureMs = Math.min(measureMs, 1_000);
    latencyMs = Math.min(latencyMs, 1_000);
    agents = Math.min(agents, 1_000);
  }
  const firstStep = CONNECTIONS.steps[0] ?? agents;
  return {
    json,
    relayCpuProfileDir,
    parts: new Set(parts),
    systems,
    latencySystems,
    points,
    throughput: { ...THROUGHPUT, measureMs },
    latency: { ...LOAD_LATENCY, measureMs: latencyMs },
    connections: { ...CONNECTIONS, steps: agents > firstStep ? [firstStep, agents] : [agents] },
  };
}

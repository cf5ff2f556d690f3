/**
 * The command line and settings of `npm run bench:runtime` (runtime-run.ts): which parts run, how
 * long, and the load each part puts on the agents. The defaults are what BENCHMARKS.md reports;
 * `--quick` is a smoke run of every part.
 */
import { resolve } from 'node:path';

export const RUNTIME_PART_NAMES = ['steady', 'replay', 'ceiling'] as const;
export type RuntimePartName = (typeof RUNTIME_PART_NAMES)[number];

/**
 * The simulator's interval: its shortest (simulator-config.ts MIN_INTERVAL_MS), so the rate is
 * 1,000 points/s per simulated point and the load is raised by adding points, as a plant would.
 */
export const SIMULATOR_INTERVAL_MS = 1;
/** Simulated points per step of the rate search: 50k to 800k points/s at the interval above. */
export const STEADY_POINT_COUNTS = [50, 100, 150, 200, 250, 300, 400, 600, 800] as const;
const QUICK_POINT_COUNTS = [50, 200] as const;
/** Readings per point per write: one log append and one publish frame every half second per point. */
export const DEFAULT_BATCH = 500;
/** The live rate of the replay part: 25 points, 25k points/s (the issue: "e.g. 20-50k"). */
export const REPLAY_LIVE_POINTS = 25;
/** The outage: the IT agent is stopped this long. */
const OUTAGE_MS = 60_000;
const QUICK_OUTAGE_MS = 10_000;

export interface RuntimeTiming {
  /** After the agents connect, how long the IT agent may take to be live before a step is measured. */
  readonly settleMs: number;
  /** Live running before the timed window (JIT, TLS buffers, segment files warm up). */
  readonly warmUpMs: number;
  /** The timed window of each steady step (and of the live rate before the outage). */
  readonly measureMs: number;
  readonly outageMs: number;
  /** The longest a catch-up is waited for: past it, the IT agent is reported as not live again. */
  readonly catchUpBoundMs: number;
  /** The ceiling's alternating slices (durable-append.ts). */
  readonly ceilingSlices: number;
  readonly ceilingSliceMs: number;
}

const FULL_TIMING: RuntimeTiming = {
  settleMs: 30_000,
  warmUpMs: 4_000,
  measureMs: 15_000,
  outageMs: OUTAGE_MS,
  catchUpBoundMs: 180_000,
  ceilingSlices: 8,
  ceilingSliceMs: 300,
};

const QUICK_TIMING: RuntimeTiming = {
  settleMs: 10_000,
  warmUpMs: 1_000,
  measureMs: 4_000,
  outageMs: QUICK_OUTAGE_MS,
  catchUpBoundMs: 60_000,
  ceilingSlices: 3,
  ceilingSliceMs: 200,
};

export const RUNTIME_USAGE = `usage: npm run bench:runtime -- [options]   (also part of npm run bench)
  --json             the results as JSON on stdout
  --parts LIST       of ${RUNTIME_PART_NAMES.join(',')} (default: all)
  --points LIST      simulated points per step of the rate search, 1,000 points/s each
                     (default: ${STEADY_POINT_COUNTS.join(',')}; the search stops at the first step the sink cannot keep up with)
  --batch N          readings per point per write (default: ${DEFAULT_BATCH})
  --outage-s N       how long the IT agent is stopped in the replay part (default: ${OUTAGE_MS / 1000})
  --cpu-prof DIR     CPU profiles of the relay and agent processes (node --cpu-prof) into DIR
  --quick            a smoke run: ${QUICK_POINT_COUNTS.join(' and ')} points, ${QUICK_TIMING.measureMs / 1000} s windows, a ${QUICK_OUTAGE_MS / 1000} s outage`;

export interface RuntimeOptions {
  readonly json: boolean;
  readonly parts: ReadonlySet<RuntimePartName>;
  readonly pointCounts: readonly number[];
  readonly batch: number;
  readonly timing: RuntimeTiming;
  readonly cpuProfileDir: string | undefined;
}

/** The options, or the text to print (usage, or an error with the usage). */
export function parseRuntimeOptions(
  args: readonly string[],
): RuntimeOptions | { readonly message: string; readonly ok: boolean } {
  let json = false;
  let quick = false;
  let parts: RuntimePartName[] = [...RUNTIME_PART_NAMES];
  let pointCounts: number[] | undefined;
  let batch = DEFAULT_BATCH;
  let outageMs: number | undefined;
  let cpuProfileDir: string | undefined;
  const fail = (message: string) => ({ message: `${message}\n${RUNTIME_USAGE}`, ok: false });
  for (let index = 0; index < args.length; index++) {
    const arg = args[index]!;
    const takesValue = arg !== '--json' && arg !== '--quick' && arg !== '--help' && arg !== '-h';
    const value = takesValue ? args[++index] : undefined;
    if (takesValue && value === undefined) return fail(`${arg} needs a value`);
    const integer = (minimum: number, maximum: number) => {
      const parsed = Number(value);
      return Number.isInteger(parsed) && parsed >= minimum && parsed <= maximum ? parsed : undefined;
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
        return { message: RUNTIME_USAGE, ok: true };
      case '--parts': {
        const named = (value ?? '').split(',').filter((part) => part !== '');
        const known = (part: string): part is RuntimePartName =>
          (RUNTIME_PART_NAMES as readonly string[]).includes(part);
        if (named.length === 0 || !named.every(known))
          return fail(`--parts: of ${RUNTIME_PART_NAMES.join(', ')}`);
        parts = named;
        break;
      }
      case '--points': {
        const counts = (value ?? '').split(',').map(Number);
        // simulator-config.ts MAX_POINTS_PER_SOURCE
        if (!counts.every((count) => Number.isInteger(count) && count >= 1 && count <= 10_000)) {
          return fail('--points: whole numbers from 1 to 10000');
        }
        pointCounts = counts;
        break;
      }
      case '--batch': {
        // simulator-config.ts: at most MAX_READINGS_PER_WRITE (4096) readings per write
        const parsed = integer(1, 4096);
        if (parsed === undefined) return fail('--batch: 1 to 4096');
        batch = parsed;
        break;
      }
      case '--outage-s': {
        const parsed = integer(1, 600);
        if (parsed === undefined) return fail('--outage-s: 1 to 600');
        outageMs = parsed * 1000;
        break;
      }
      case '--cpu-prof':
        cpuProfileDir = resolve(value!);
        break;
      default:
        return fail(`unknown argument ${arg}`);
    }
  }
  const timing = quick ? QUICK_TIMING : FULL_TIMING;
  return {
    json,
    parts: new Set(parts),
    pointCounts: pointCounts ?? (quick ? [...QUICK_POINT_COUNTS] : [...STEADY_POINT_COUNTS]),
    batch,
    timing: { ...timing, outageMs: outageMs ?? timing.outageMs },
    cpuProfileDir,
  };
}

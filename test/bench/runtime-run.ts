/**
 * `npm run bench:runtime` (also part of `npm run bench`): the agent runtime of issue 6 end to end,
 * in one run, on this machine: the relay and the two agents as the separate processes they are in
 * production (`dmz-relay --config`, `dmz-agent run --config` for an OT and an IT agent).
 *
 *   1. steady: the simulator's rate raised step by step until the IT agent's sink cannot keep up;
 *      points/s logged durably, sent and durable in the sink, bytes per point, CPU per process.
 *   2. ceiling: the OT log alone, and a raw append + fdatasync of the bytes it writes per commit,
 *      for the load of the best step (durable-append.ts, shared with `npm run bench:log`).
 *   3. replay: at a steady live rate, the IT agent stopped for 60 s, started again, and timed until
 *      it is live again.
 *
 * Prints the report on stdout (progress on stderr). Exits 0 whether or not the targets are met (a
 * benchmark reports; tests assert), 1 if a measurement failed to run, 2 on bad arguments. Every
 * child process and the temporary directory are removed on the way out, whatever happened.
 */
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodePoint } from '../../agents/points/point.ts';
import { generatedName } from '../../agents/ot/sources/simulator-config.ts';
import { measureDurableAppends } from './durable-append.ts';
import { ChildProcessGroup } from './processes.ts';
import { measureCatchUp, measureSteady, type LoadShape, type StepDirs } from './runtime-phases.ts';
import { parseRuntimeOptions, REPLAY_LIVE_POINTS, type RuntimeOptions } from './runtime-options.ts';
import { startRuntimePlant, type RuntimePlant } from './runtime-plant.ts';
import {
  bestSteadyStep,
  formatRuntimeReport,
  listRuntimeFailures,
  type RuntimeReport,
} from './runtime-report.ts';
import { attempt, type Outcome } from './stats.ts';

/** Whole-run watchdog: a full run takes 6-10 minutes; past this, something hangs. */
const RUN_TIME_LIMIT_MS = 25 * 60_000;
const startedAt = performance.now();

function progress(message: string): void {
  process.stderr.write(
    `bench:runtime ${((performance.now() - startedAt) / 1000).toFixed(0).padStart(4)} s: ${message}\n`,
  );
}

async function freshDirs(root: string): Promise<StepDirs> {
  await mkdir(root, { recursive: true, mode: 0o700 });
  return { ot: join(root, 'ot-state'), it: join(root, 'it-state'), sink: join(root, 'sink') };
}

async function runSteady(
  plant: RuntimePlant,
  workDir: string,
  options: RuntimeOptions,
): Promise<Outcome<Awaited<ReturnType<typeof measureSteady>>>[]> {
  const steps = [];
  for (const points of options.pointCounts) {
    const shape = { points, batch: options.batch };
    progress(`steady: ${points} points x 1,000/s, batch ${shape.batch}`);
    const root = join(workDir, `steady-${points}`);
    const step = await attempt(async () =>
      measureSteady(plant, await freshDirs(root), shape, options.timing, `steady-${points}`),
    );
    await rm(root, { recursive: true, force: true });
    steps.push(step);
    if (step.ok) {
      const { inSink, sustained } = step.value;
      progress(
        `steady: ${Math.round(inSink)} points/s into the sink (${sustained ? 'kept up' : 'fell behind'})`,
      );
    }
    if (!step.ok || !step.value.sustained) break;
  }
  return steps;
}

/** The records and streams the simulator writes at `shape`: sine readings, one stream per point. */
async function measureCeiling(
  workDir: string,
  shape: LoadShape,
  plant: { otName: string },
  options: RuntimeOptions,
) {
  const dir = join(workDir, 'ceiling');
  await mkdir(dir, { mode: 0o700 });
  const now = Date.now();
  const records = Array.from({ length: shape.batch }, (_, index) =>
    encodePoint({ value: 50 + 50 * Math.sin(index / 100), quality: 'good', sourceTime: now + index }),
  );
  const streams = Array.from(
    { length: shape.points },
    (_, index) => `${plant.otName}/bench/${generatedName(index)}`,
  );
  try {
    const result = await measureDurableAppends(dir, {
      records,
      streams,
      appenders: shape.points,
      slices: options.timing.ceilingSlices,
      sliceMs: options.timing.ceilingSliceMs,
    });
    return { shape, result };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(options: RuntimeOptions): Promise<number> {
  const loadAverageAtStart = loadavg()[0] ?? 0;
  const workDir = await mkdtemp(join(tmpdir(), 'dmz-bench-runtime-'));
  const group = new ChildProcessGroup();
  // Runs on every way out, including process.exit() and an uncaught exception that skips `finally`.
  process.once('exit', () => {
    group.killAllNow();
    rmSync(workDir, { recursive: true, force: true });
  });
  const watchdog = setTimeout(() => {
    progress(`run exceeded ${RUN_TIME_LIMIT_MS / 1000} s: stopping everything`);
    process.exit(1);
  }, RUN_TIME_LIMIT_MS);
  process.once('SIGINT', () => process.exit(130));
  process.once('SIGTERM', () => process.exit(143));
  try {
    progress(
      `load average ${loadAverageAtStart.toFixed(2)}; creating a CA, the relay and two enrolled agents`,
    );
    if (options.cpuProfileDir !== undefined) await mkdir(options.cpuProfileDir, { recursive: true });
    const plant = await startRuntimePlant(group, { workDir, cpuProfileDir: options.cpuProfileDir });
    const steady = options.parts.has('steady') ? await runSteady(plant, workDir, options) : undefined;
    const partial: RuntimeReport = {
      node: process.version,
      cores: availableParallelism(),
      loadAverageAtStart,
      loadAverageAtEnd: 0,
      setup: '',
      steady,
      catchUp: undefined,
      ceiling: undefined,
    };
    const best = bestSteadyStep(partial);
    const ceilingShape = best?.shape ?? { points: options.pointCounts[0] ?? 1, batch: options.batch };
    let ceiling: RuntimeReport['ceiling'];
    if (options.parts.has('ceiling')) {
      progress(`ceiling: ${ceilingShape.points} streams x ${ceilingShape.batch} points per append`);
      ceiling = await attempt(() => measureCeiling(workDir, ceilingShape, plant, options));
    }
    let catchUp: RuntimeReport['catchUp'];
    if (options.parts.has('replay')) {
      const shape = { points: REPLAY_LIVE_POINTS, batch: options.batch };
      progress(`replay: ${shape.points} points x 1,000/s live`);
      catchUp = await attempt(async () =>
        measureCatchUp(plant, await freshDirs(join(workDir, 'replay')), shape, options.timing, progress),
      );
    }
    await plant.stop();
    const code =
      process.env.DMZ_RELAY_USE_BUILD === '1' ? 'the build in dist/' : 'the TypeScript sources through tsx';
    const report: RuntimeReport = {
      ...partial,
      loadAverageAtEnd: loadavg()[0] ?? 0,
      setup: `processes: dmz-relay --config (production limits), dmz-agent run --config for the OT and the IT agent, from ${code}; progress from each agent's /metrics on loopback`,
      catchUp,
      ceiling,
    };
    progress('done');
    process.stdout.write(`${options.json ? JSON.stringify(report, null, 2) : formatRuntimeReport(report)}\n`);
    return listRuntimeFailures(report).length === 0 ? 0 : 1;
  } finally {
    clearTimeout(watchdog);
    await group.stopAll();
    await rm(workDir, { recursive: true, force: true });
  }
}

const options = parseRuntimeOptions(process.argv.slice(2));
if ('message' in options) {
  (options.ok ? process.stdout : process.stderr).write(`${options.message}\n`);
  process.exit(options.ok ? 0 : 2);
}
main(options).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(
      `bench:runtime failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);

/**
 * `npm run bench`: the relay against mosquitto on this machine, in one run, over mTLS on loopback.
 *
 *   node --import tsx test/bench/run.ts [--json] [--relay-cpu-prof DIR]
 *
 * Prints the table on stdout (progress on stderr). Exits 0 whether or not the targets are met (a
 * benchmark reports; tests assert), 1 if a workload failed to run, 2 on bad arguments. Every child
 * process and the temporary directory are removed on the way out, whatever happened.
 */
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { writeBenchPki } from './bench-pki.ts';
import { runMosquittoWorkloads, type MosquittoResults } from './mosquitto-workload.ts';
import { ChildProcessGroup } from './processes.ts';
import { startRelayChild } from './relay-child.ts';
import { runRelayWorkloads } from './relay-workload.ts';
import { buildReport, formatReport, listFailures } from './report.ts';
import { RUN_TIME_LIMIT_MS } from './settings.ts';
import { attempt, type SystemResults } from './stats.ts';

const USAGE = 'usage: npm run bench -- [--json] [--relay-cpu-prof DIR]';

interface Options {
  readonly json: boolean;
  readonly relayCpuProfileDir: string | undefined;
}

function parseOptions(args: readonly string[]): Options | string {
  let json = false;
  let relayCpuProfileDir: string | undefined;
  for (let index = 0; index < args.length; index++) {
    const arg = args[index];
    if (arg === '--json') json = true;
    else if (arg === '--relay-cpu-prof' && args[index + 1] !== undefined)
      relayCpuProfileDir = resolve(args[++index]!);
    else if (arg === '--help' || arg === '-h') return USAGE;
    else return `unknown argument ${arg ?? ''}\n${USAGE}`;
  }
  return { json, relayCpuProfileDir };
}

function progress(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

function failedSystem(error: string): SystemResults {
  const failed = { ok: false, error } as const;
  return { oneToOne: failed, fanOut: failed, latency: failed };
}

async function main(options: Options): Promise<number> {
  const loadAverageAtStart = loadavg()[0] ?? 0;
  const workDir = await mkdtemp(join(tmpdir(), 'dmz-bench-'));
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
    progress('creating a throwaway PKI');
    const bench = await writeBenchPki(workDir);

    progress('relay: starting it in a child process, then 1 -> 1, latency, fan-out');
    const started = await attempt(() =>
      startRelayChild(group, {
        workDir,
        stateDir: bench.relayStateDir,
        trustDomain: bench.pki.trustDomain,
        cpuProfileDir: options.relayCpuProfileDir,
      }),
    );
    let relay: SystemResults;
    if (started.ok) {
      try {
        relay = await runRelayWorkloads(started.value.url, bench.pki).catch((error: unknown) =>
          failedSystem(error instanceof Error ? error.message : String(error)),
        );
      } finally {
        await started.value.stop();
      }
    } else {
      relay = failedSystem(started.error);
    }

    progress('mosquitto: 1 -> 1, latency, fan-out, pipe round trip');
    const mosquitto: MosquittoResults = await runMosquittoWorkloads(group, workDir, bench.mqtt).catch(
      (error: unknown) => ({
        version: 'unknown',
        ...failedSystem(error instanceof Error ? error.message : String(error)),
        pipeRoundTrip: { ok: false, error: 'not run' },
      }),
    );

    const report = buildReport(relay, mosquitto, loadAverageAtStart);
    process.stdout.write(`${options.json ? JSON.stringify(report, null, 2) : formatReport(report)}\n`);
    return listFailures(report).length === 0 ? 0 : 1;
  } finally {
    clearTimeout(watchdog);
    await group.stopAll();
    await rm(workDir, { recursive: true, force: true });
  }
}

const options = parseOptions(process.argv.slice(2));
if (typeof options === 'string') {
  (options === USAGE ? process.stdout : process.stderr).write(`${options}\n`);
  process.exit(options === USAGE ? 0 : 2);
}
main(options).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(
      `bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);

/**
 * `npm run bench`, first part: the relay against mosquitto and nats-server on this machine, in one
 * run, over mTLS on loopback (BENCHMARKS.md says what and how).
 *
 *   npm run bench:relay -- [--json] [--relay-cpu-prof DIR] [--parts ...] [--help]
 *
 * Prints the report on stdout (progress on stderr). Exits 0 whether or not the targets are met (a
 * benchmark reports; tests assert), 1 if a measurement failed to run, 2 on bad arguments. Every
 * child process and the temporary directory are removed on the way out, whatever happened.
 */
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeBenchPki, type BenchPki } from './bench-pki.ts';
import { startClientWorkers, type ClientWorker } from './client-pool.ts';
import { measureThroughput, PhaseCounter, runFairMatrix, type FairCell } from './fair-matrix.ts';
import { runFleetPart } from './fleet-part.ts';
import { runLoadLatency, type LatencyCell } from './load-latency.ts';
import { makeBatch } from './payloads.ts';
import { ChildProcessGroup } from './processes.ts';
import { buildReport, formatReport, listFailures } from './report.ts';
import { parseRunOptions, type RunOptions } from './run-options.ts';
import { startDataPathServers } from './servers.ts';
import { FAN_OUT_SUBSCRIBERS, RUN_TIME_LIMIT_MS, STORM } from './settings.ts';
import { attempt } from './stats.ts';
import { systemUnderTest, type SystemName } from './systems.ts';

const FAN_OUTS = [1, FAN_OUT_SUBSCRIBERS] as const;
const startedAt = performance.now();

function progress(message: string): void {
  process.stderr.write(
    `bench ${((performance.now() - startedAt) / 1000).toFixed(0).padStart(4)} s: ${message}\n`,
  );
}

interface DataPathResults {
  readonly fair: FairCell[];
  readonly latency: LatencyCell[];
  readonly versions: Record<string, string>;
}

async function runDataPath(
  group: ChildProcessGroup,
  workDir: string,
  bench: BenchPki,
  workers: readonly ClientWorker[],
  options: RunOptions,
): Promise<DataPathResults> {
  const servers = await startDataPathServers(group, workDir, bench, options.relayCpuProfileDir);
  try {
    const versions = {
      mosquitto: servers.mosquitto?.version ?? 'not started',
      'nats-server': servers.nats?.version ?? 'not started',
    };
    const system = (name: SystemName) => systemUnderTest(name, servers, workers, group);
    const phases = new PhaseCounter();
    const fair = options.parts.has('fair')
      ? await runFairMatrix(
          options.systems.map(system),
          options.points,
          FAN_OUTS,
          options.throughput,
          phases,
          progress,
        )
      : [];
    const latency: LatencyCell[] = [];
    if (options.parts.has('latency')) {
      const { batch, shape } = makeBatch(options.latency.pointsPerMessage);
      // A capacity the fair table did not measure is measured here, the same way.
      for (const name of options.latencySystems) {
        for (const subscribers of FAN_OUTS) {
          const known = fair.some(
            (cell) =>
              cell.system === name &&
              cell.subscribers === subscribers &&
              cell.pointsPerMessage === shape.pointsPerMessage,
          );
          if (known) continue;
          progress(`latency: capacity of ${name}, 1 -> ${subscribers}`);
          const spec = { index: phases.next(), batch, shape, subscribers };
          const result = await attempt(() => measureThroughput(system(name), spec, options.throughput));
          fair.push({
            system: name,
            pointsPerMessage: shape.pointsPerMessage,
            messageBytes: shape.messageBytes,
            subscribers,
            result,
          });
        }
      }
      const capacityOf = (name: SystemName, subscribers: number) => {
        const cell = fair.find(
          (candidate) =>
            candidate.system === name &&
            candidate.subscribers === subscribers &&
            candidate.pointsPerMessage === shape.pointsPerMessage,
        );
        return cell?.result.ok === true ? cell.result.value.messagesPerSecond : undefined;
      };
      latency.push(
        ...(await runLoadLatency(
          options.latencySystems.map(system),
          FAN_OUTS,
          options.latency,
          capacityOf,
          phases,
          progress,
        )),
      );
    }
    return { fair, latency, versions };
  } finally {
    await servers.stop();
  }
}

function clientVersions(): Record<string, string> {
  const require = createRequire(import.meta.url);
  const version = (name: string) => {
    try {
      return (require(`${name}/package.json`) as { version: string }).version;
    } catch {
      return 'unknown';
    }
  };
  return { 'mqtt.js': version('mqtt'), 'nats.js': version('nats') };
}

async function main(options: RunOptions): Promise<number> {
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
    progress(
      `load average ${loadAverageAtStart.toFixed(2)}; creating a throwaway PKI and the client workers`,
    );
    const bench = await writeBenchPki(workDir);
    const workers = await startClientWorkers(group, FAN_OUT_SUBSCRIBERS + 1);
    const dataPath =
      options.parts.has('fair') || options.parts.has('latency')
        ? await runDataPath(group, workDir, bench, workers, options)
        : { fair: [], latency: [], versions: {} };
    const fleet =
      options.parts.has('connections') || options.parts.has('storm')
        ? await runFleetPart(
            group,
            workDir,
            bench,
            workers.slice(0, options.connections.workers),
            {
              connections: options.connections,
              storm: STORM,
              references: options.parts.has('connections'),
              runStorm: options.parts.has('storm'),
              relayCpuProfileDir: options.relayCpuProfileDir,
            },
            progress,
          )
        : { connections: [], storms: [] };
    const report = buildReport(
      {
        fair: dataPath.fair,
        latency: dataPath.latency,
        connections: fleet.connections,
        storms: fleet.storms,
      },
      {
        versions: { ...dataPath.versions, ...clientVersions() },
        settings: {
          parts: [...options.parts],
          throughput: options.throughput,
          latency: options.latency,
          connections: options.connections,
          storm: STORM,
        },
      },
      loadAverageAtStart,
    );
    progress('done');
    process.stdout.write(`${options.json ? JSON.stringify(report, null, 2) : formatReport(report)}\n`);
    return listFailures(report).length === 0 ? 0 : 1;
  } finally {
    clearTimeout(watchdog);
    await group.stopAll();
    await rm(workDir, { recursive: true, force: true });
  }
}

const options = parseRunOptions(process.argv.slice(2));
if ('message' in options) {
  (options.ok ? process.stdout : process.stderr).write(`${options.message}\n`);
  process.exit(options.ok ? 0 : 2);
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

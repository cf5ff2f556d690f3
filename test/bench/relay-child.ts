/**
 * Starts relay-process.ts as a child: writes its configuration (loopback listeners, a policy for
 * the benchmark's agents, rate limits far above what two cores can move) and waits for it to listen.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LineLog, waitForExit, type ChildProcessGroup } from './processes.ts';
import type { RelayProcessReady } from './relay-process.ts';
import { STARTUP_TIMEOUT_MS } from './settings.ts';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const RELAY_PROCESS = fileURLToPath(new URL('./relay-process.ts', import.meta.url));
const STOP_TIMEOUT_MS = 5_000;

/**
 * The defaults (50k frames/s, 64 MiB/s per agent) would cap the benchmark itself: 1M points/s of
 * 128 bytes is ~140 MB/s. These are far above anything two cores can move, so they never bite.
 */
const BENCH_LIMITS = {
  messagesPerSecond: 10_000_000,
  bytesPerSecond: 16 * 1024 * 1024 * 1024,
} as const;

export interface RelayChild {
  readonly url: string;
  /** Closes the relay's stdin (it shuts down cleanly) and waits for it to exit. */
  stop(): Promise<void>;
}

export interface RelayChildOptions {
  readonly workDir: string;
  readonly stateDir: string;
  readonly trustDomain: string;
  /** When set, the relay runs with `--cpu-prof` and writes its profile here on exit. */
  readonly cpuProfileDir?: string | undefined;
}

export async function startRelayChild(
  group: ChildProcessGroup,
  options: RelayChildOptions,
): Promise<RelayChild> {
  const configPath = join(options.workDir, 'relay.yaml');
  const config = {
    trustDomain: options.trustDomain,
    state: options.stateDir,
    listen: { agents: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
    log: { level: 'silent', audit: join(options.workDir, 'relay-audit.log') },
    limits: BENCH_LIMITS,
    policy: [{ role: 'ot' }, { role: 'it', subscribe: ['#'] }],
  };
  // YAML is a superset of JSON: the relay reads this with its production loader.
  await writeFile(configPath, JSON.stringify(config, null, 2));
  const profiling =
    options.cpuProfileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', options.cpuProfileDir];
  const child = group.spawn(process.execPath, ['--import', 'tsx', ...profiling, RELAY_PROCESS, configPath], {
    cwd: REPO_ROOT,
  });
  const stdout = new LineLog(child.stdout!);
  const stderr = new LineLog(child.stderr!);
  const exited = new Promise<never>((_, reject) => {
    child.once('exit', (code, signal) =>
      reject(new Error(`relay exited during start-up (${code ?? signal}): ${stderr.tail(40)}`)),
    );
    child.once('error', reject);
  });
  exited.catch(() => undefined); // after start-up, its exit is stop()'s business
  let ready: RelayProcessReady;
  try {
    const line = await Promise.race([
      stdout.waitFor((text) => text.startsWith('{'), 'the relay to listen', STARTUP_TIMEOUT_MS),
      exited,
    ]);
    ready = JSON.parse(line) as RelayProcessReady;
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    url: `wss://127.0.0.1:${ready.agentPort}/v1/agent`,
    async stop() {
      child.stdin!.end();
      if ((await waitForExit(child, STOP_TIMEOUT_MS)) === undefined) child.kill('SIGKILL');
    },
  };
}

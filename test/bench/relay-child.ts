/**
 * Starts the relay as a child process and waits for it to listen. Two kinds: relay-process.ts (the
 * data path with TLS material and no CA behind it; loopback listeners, a policy for the benchmark's
 * agents, rate limits far above what two cores can move), and the production `dmz-relay` command
 * running its own CA from a state directory (enrollment, revocation watch, the default limits).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { LineLog, waitForExit, type ChildProcessGroup } from './processes.ts';
import type { RelayProcessReady } from './relay-process.ts';
import { FLOW_WINDOW_BYTES, STARTUP_TIMEOUT_MS } from './settings.ts';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const RELAY_PROCESS = fileURLToPath(new URL('./relay-process.ts', import.meta.url));
const RELAY_COMMAND = fileURLToPath(new URL('../../bin/dmz-relay.js', import.meta.url));
const STOP_TIMEOUT_MS = 5_000;
/** The production relay's start-up log line (relay/cli.ts), which carries the agent port. */
const LISTENING_MESSAGE = 'relay listening';

/**
 * The defaults (50k frames/s, 64 MiB/s per agent) would cap the benchmark itself: 1M points/s of
 * 128 bytes is ~140 MB/s. These are far above anything two cores can move, so they never bite.
 */
export const BENCH_LIMITS = {
  messagesPerSecond: 10_000_000,
  bytesPerSecond: 16 * 1024 * 1024 * 1024,
  // The flow window keeps every consumer's queue under FLOW_WINDOW_BYTES; this leaves room for
  // frame overhead so that the relay never has to drop (the default, 8 MiB, is the window itself).
  maxQueuedBytesPerConsumer: 4 * FLOW_WINDOW_BYTES,
  // Every benchmark agent comes from 127.0.0.1, as a plant's agents come from its firewall's NAT
  // address: configured as a trusted source, as such a plant would (README, limits.trustedSources).
  trustedSources: [
    { network: '127.0.0.1/32', connectionAttemptsPerMinute: 1_000_000, handshakesInProgressPerAddress: 64 },
  ],
};

/**
 * The fleet of the connection and restart benchmarks comes from many loopback addresses (as agents
 * behind several NAT addresses would), all in one trusted network with budgets that never bite: what
 * is measured is the relay's own pace (its handshake slots and queue stay at their defaults).
 */
export const FLEET_LIMITS = {
  ...BENCH_LIMITS,
  trustedSources: [
    {
      network: '127.0.0.0/8',
      connectionAttemptsPerMinute: 100_000_000,
      handshakesInProgressPerAddress: 4096,
    },
  ],
};

export interface RelayChild {
  readonly url: string;
  readonly agentPort: number;
  readonly adminPort: number;
  /** The relay process (for /proc/<pid>/stat and status). */
  readonly pid: number;
  /** True once the process has exited. */
  readonly exited: boolean;
  /** Closes the relay's stdin (it shuts down cleanly) and waits for it to exit. */
  stop(): Promise<void>;
}

export interface RelayChildOptions {
  readonly workDir: string;
  readonly stateDir: string;
  readonly trustDomain: string;
  /** When set, the relay runs with `--cpu-prof` and writes its profile here on exit. */
  readonly cpuProfileDir?: string | undefined;
  /** Names its configuration and audit files in workDir (default `relay`). */
  readonly name?: string;
  /** The agent port (default 0: any free one). A restart on the same port reuses the config. */
  readonly port?: number;
  /** The `limits` section (default BENCH_LIMITS). */
  readonly limits?: Readonly<Record<string, unknown>>;
}

export async function startRelayChild(
  group: ChildProcessGroup,
  options: RelayChildOptions,
): Promise<RelayChild> {
  const name = options.name ?? 'relay';
  const configPath = join(options.workDir, `${name}.yaml`);
  const config = {
    trustDomain: options.trustDomain,
    state: options.stateDir,
    listen: {
      agents: { host: '127.0.0.1', port: options.port ?? 0 },
      admin: { host: '127.0.0.1', port: 0 },
    },
    log: { level: 'silent', audit: join(options.workDir, `${name}-audit.log`) },
    limits: options.limits ?? BENCH_LIMITS,
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
  // Its one line of stdout says where it listens; its failures are on stderr.
  const line = await waitUntilListening(child, stdout, (text) => text.startsWith('{'), stderr);
  const ready = JSON.parse(line) as RelayProcessReady;
  let exited = false;
  child.once('exit', () => (exited = true));
  return {
    url: `wss://127.0.0.1:${ready.agentPort}/v1/agent`,
    agentPort: ready.agentPort,
    adminPort: ready.adminPort,
    pid: child.pid!,
    get exited() {
      return exited || child.exitCode !== null;
    },
    async stop() {
      child.stdin!.end();
      if ((await waitForExit(child, STOP_TIMEOUT_MS)) === undefined) child.kill('SIGKILL');
    },
  };
}

export interface RelayCommandChild {
  readonly url: string;
  readonly agentPort: number;
  /** For /proc/<pid>/stat: the relay's own Node process (bin/dmz-relay.js loads tsx in-process). */
  readonly pid: number;
  /**
   * SIGTERM (the relay drains and exits), then waits up to `timeoutMs`: resolves with the
   * milliseconds it took to exit, or undefined when it did not (it is then killed with SIGKILL).
   */
  terminate(timeoutMs: number): Promise<number | undefined>;
}

export interface RelayCommandChildOptions {
  readonly workDir: string;
  /** Names its configuration and audit files in workDir. */
  readonly name: string;
  readonly stateDir: string;
  readonly trustDomain: string;
  readonly enrollment: { readonly port: number; readonly mode: 'auto' | 'on' | 'off' };
  /** When set, the relay runs with `--cpu-prof` and writes its profile here on exit. */
  readonly cpuProfileDir?: string | undefined;
}

/**
 * Runs `dmz-relay --config` with its CA in `stateDir`, loopback only, logging at info on stderr,
 * and every limit at its production default (what an attacker meets).
 */
export async function startRelayCommandChild(
  group: ChildProcessGroup,
  options: RelayCommandChildOptions,
): Promise<RelayCommandChild> {
  const configPath = join(options.workDir, `${options.name}.yaml`);
  const config = {
    trustDomain: options.trustDomain,
    state: options.stateDir,
    listen: {
      agents: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      enrollment: { host: '127.0.0.1', ...options.enrollment },
    },
    // info: the start-up line with the agent port, and the enrollment listener opening and closing.
    log: { level: 'info', audit: join(options.workDir, `${options.name}-audit.log`) },
    policy: [{ role: 'ot' }, { role: 'it', subscribe: ['#'] }],
  };
  await writeFile(configPath, JSON.stringify(config, null, 2));
  const profiling =
    options.cpuProfileDir === undefined
      ? []
      : [
          '--cpu-prof',
          '--cpu-prof-dir',
          options.cpuProfileDir,
          '--cpu-prof-name',
          `${options.name}.cpuprofile`,
        ];
  const child = group.spawn(process.execPath, [...profiling, RELAY_COMMAND, '--config', configPath], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const stderr = new LineLog(child.stderr!);
  const line = await waitUntilListening(child, stderr, (text) =>
    text.includes(`"msg":"${LISTENING_MESSAGE}"`),
  );
  const { agentPort } = JSON.parse(line) as { agentPort: number };
  return {
    url: `wss://127.0.0.1:${agentPort}/v1/agent`,
    agentPort,
    pid: child.pid!,
    async terminate(timeoutMs) {
      const startedAt = performance.now();
      child.kill('SIGTERM');
      const status = await waitForExit(child, timeoutMs);
      if (status !== undefined) return performance.now() - startedAt;
      child.kill('SIGKILL');
      await waitForExit(child, STOP_TIMEOUT_MS);
      return undefined;
    },
  };
}

/**
 * The first line of `log` matching `isReady`; rejects (and kills the child) if it exits first or
 * takes too long, quoting the end of `errors`.
 */
async function waitUntilListening(
  child: ChildProcess,
  log: LineLog,
  isReady: (line: string) => boolean,
  errors: LineLog = log,
): Promise<string> {
  const exited = new Promise<never>((_, reject) => {
    child.once('exit', (code, signal) =>
      reject(new Error(`relay exited during start-up (${code ?? signal}): ${errors.tail(40)}`)),
    );
    child.once('error', reject);
  });
  exited.catch(() => undefined); // after start-up, its exit is the caller's business
  try {
    return await Promise.race([log.waitFor(isReady, 'the relay to listen', STARTUP_TIMEOUT_MS), exited]);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
}

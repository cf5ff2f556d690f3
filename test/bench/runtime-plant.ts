/**
 * The agent runtime as it runs in production, for `npm run bench:runtime`: `dmz-relay --config`
 * and `dmz-agent run --config` each in a process of its own (so each has its own share of the
 * cores), with a CA state made as `dmz-pki init` makes it and agents enrolled into credential
 * directories as `dmz-agent enroll` leaves them. Progress is read from each agent's loopback admin
 * listener (`/metrics`, the counters status.json also carries) so it can be sampled more often than
 * status.json is written; the last word of a stopped agent is its status.json.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  prepareCredentialDirectory,
  readEnrolledIdentity,
  storeCredentials,
} from '../../agents/credentials.ts';
import { STATUS_FILE, type AgentStatus } from '../../agents/runtime/status.ts';
import type { Role } from '../../relay/protocol/identity.ts';
import { CA_STATE_TRUST_DOMAIN, createCaState, enrollInProcess } from '../support/ca-state.ts';
import { LineLog, rejectOnExit, waitForExit, type ChildProcessGroup } from './processes.ts';
import { startRelayCommandChild, type RelayCommandChild } from './relay-child.ts';
import { STARTUP_TIMEOUT_MS } from './settings.ts';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const AGENT_COMMAND = fileURLToPath(new URL('../../bin/dmz-agent.js', import.meta.url));
/** The agent's start-up log line (agents/runtime/run-command.ts), which carries the admin port. */
const RUNNING_MESSAGE = 'agent running';
/** The agent's own stop bound is 15 s (run-command.ts); past that, and a little, it is killed. */
const AGENT_STOP_BOUND_MS = 20_000;
const RELAY_STOP_BOUND_MS = 15_000;
/** How often waitUntilConnected asks. */
const CONNECT_POLL_MS = 100;

/** The counters of one agent at one moment (`at`: performance.now() when they arrived). */
export interface AgentCounters {
  readonly at: number;
  readonly connected: boolean;
  readonly pointsLogged: number;
  readonly pointsSent: number;
  readonly pointsLeftToReplay: number;
  readonly pointsReplayed: number;
  readonly logBytes: number;
  /** IT: points the sinks hold durably, summed over consumers (since this process started). */
  readonly pointsWritten: number;
  readonly replayRounds: number;
  readonly holes: number;
}

export interface AgentChild {
  readonly name: string;
  readonly pid: number;
  readonly stateDir: string;
  /** performance.now() at the spawn. */
  readonly spawnedAt: number;
  counters(): Promise<AgentCounters>;
  waitUntilConnected(timeoutMs: number): Promise<AgentCounters>;
  /** SIGTERM (the agent flushes what is durable-bound and exits); its last status.json. */
  stop(): Promise<AgentStatus>;
}

export interface RuntimePlant {
  readonly relay: RelayCommandChild;
  readonly otName: string;
  readonly itName: string;
  /** Starts `dmz-agent run` with `config` (credentials, relay and admin filled in). */
  startAgent(
    role: Role,
    label: string,
    config: { readonly state: string } & Record<string, unknown>,
  ): Promise<AgentChild>;
  stop(): Promise<void>;
}

export interface RuntimePlantOptions {
  readonly workDir: string;
  /** When set, every process runs with `--cpu-prof` and writes its profile here on exit. */
  readonly cpuProfileDir: string | undefined;
}

export async function startRuntimePlant(
  group: ChildProcessGroup,
  options: RuntimePlantOptions,
): Promise<RuntimePlant> {
  const { workDir, cpuProfileDir } = options;
  const stateDir = join(workDir, 'relay-state');
  await createCaState(stateDir);
  const otName = 'press-1';
  const itName = 'historian';
  const credentials = {
    ot: await enrollInto(stateDir, 'ot', otName, join(workDir, `${otName}-credentials`)),
    it: await enrollInto(stateDir, 'it', itName, join(workDir, `${itName}-credentials`)),
  };
  const relay = await startRelayCommandChild(group, {
    workDir,
    name: 'relay',
    stateDir,
    trustDomain: CA_STATE_TRUST_DOMAIN,
    enrollment: { port: 0, mode: 'off' },
    cpuProfileDir,
  });
  let started = 0;
  return {
    relay,
    otName,
    itName,
    async startAgent(role, label, config) {
      const configPath = join(workDir, `${label}.yaml`);
      const full = {
        credentials: credentials[role],
        relay: { url: relay.url },
        admin: { host: '127.0.0.1', port: 0 },
        log: { level: 'info' },
        ...config,
      };
      // YAML is a superset of JSON: the agent reads this with its production loader.
      await writeFile(configPath, JSON.stringify(full, null, 2));
      const profiling =
        cpuProfileDir === undefined
          ? []
          : [
              '--cpu-prof',
              '--cpu-prof-dir',
              cpuProfileDir,
              '--cpu-prof-name',
              `${label}.${++started}.cpuprofile`,
            ];
      return startAgentChild(group, label, config.state, [
        ...profiling,
        AGENT_COMMAND,
        'run',
        '--config',
        configPath,
      ]);
    },
    async stop() {
      await relay.terminate(RELAY_STOP_BOUND_MS);
    },
  };
}

async function enrollInto(caState: string, role: Role, name: string, dir: string): Promise<string> {
  const enrolled = await enrollInProcess(caState, role, name);
  await prepareCredentialDirectory(dir, { force: false });
  await storeCredentials(dir, { ...enrolled, identity: readEnrolledIdentity(enrolled) });
  return dir;
}

async function startAgentChild(
  group: ChildProcessGroup,
  name: string,
  stateDir: string,
  args: readonly string[],
): Promise<AgentChild> {
  const spawnedAt = performance.now();
  const child = group.spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  const stderr = new LineLog(child.stderr!);
  const exited = rejectOnExit(child, `dmz-agent run (${name})`, () => stderr.tail(20));
  let line: string;
  try {
    line = await Promise.race([
      stderr.waitFor(
        (text) => text.includes(`"msg":"${RUNNING_MESSAGE}"`),
        `${name} to run`,
        STARTUP_TIMEOUT_MS,
      ),
      exited,
    ]);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  const { adminPort } = JSON.parse(line) as { adminPort: number };
  const counters = () => readCounters(adminPort);
  return {
    name,
    pid: child.pid!,
    stateDir,
    spawnedAt,
    counters,
    async waitUntilConnected(timeoutMs) {
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        const sample = await Promise.race([counters(), exited]);
        if (sample.connected) return sample;
        if (performance.now() > deadline) throw new Error(`${name} not connected after ${timeoutMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, CONNECT_POLL_MS));
      }
    },
    async stop() {
      child.kill('SIGTERM');
      if ((await waitForExit(child, AGENT_STOP_BOUND_MS)) === undefined) {
        child.kill('SIGKILL');
        throw new Error(`${name} did not stop within ${AGENT_STOP_BOUND_MS} ms: ${stderr.tail(20)}`);
      }
      return JSON.parse(await readFile(join(stateDir, STATUS_FILE), 'utf8')) as AgentStatus;
    },
  };
}

/** The counters from the agent's Prometheus text (agents/runtime/agent-metrics.ts). */
async function readCounters(adminPort: number): Promise<AgentCounters> {
  const response = await fetch(`http://127.0.0.1:${adminPort}/metrics`);
  const text = await response.text();
  const at = performance.now();
  if (!response.ok) throw new Error(`/metrics answered ${response.status}`);
  const sums = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line === '') continue;
    const match = /^(\w+)(?:\{[^}]*\})? (\S+)$/.exec(line);
    if (match === null) continue;
    const [, name = '', value = ''] = match;
    sums.set(name, (sums.get(name) ?? 0) + Number(value));
  }
  const read = (name: string) => sums.get(`dmz_agent_${name}`) ?? 0;
  return {
    at,
    connected: read('relay_connected') === 1,
    pointsLogged: read('points_logged_total'),
    pointsSent: read('points_sent_total'),
    pointsLeftToReplay: read('points_left_to_replay_total'),
    pointsReplayed: read('points_replayed_total'),
    logBytes: read('log_bytes'),
    pointsWritten: read('points_acknowledged_total'),
    replayRounds: read('replay_rounds_total'),
    holes: read('holes_total'),
  };
}

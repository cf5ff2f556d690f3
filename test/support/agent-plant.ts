/**
 * A plant in one process for runtime tests: a CA state directory, the relay on it (on a port kept
 * across restarts, so agents reconnect to the same URL), and agents enrolled into credential
 * directories as `dmz-agent enroll` leaves them, with agent configurations validated as
 * agent.yaml is.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { Agent } from '../../agents/runtime/agent.ts';
import { validateAgentConfig, type AgentConfig } from '../../agents/runtime/config.ts';
import { STATUS_FILE, type AgentStatus } from '../../agents/runtime/status.ts';
import type { Role } from '../../relay/protocol/identity.ts';
import { createAuditLog } from '../../relay/server/audit.ts';
import { validateRelayConfig } from '../../relay/server/config.ts';
import { startRelay, type RunningRelay } from '../../relay/server/relay.ts';
import { CA_STATE_TRUST_DOMAIN, createCaState, enrollIntoDirectory, type EnrollOptions } from './ca-state.ts';
import { KillableProcess } from './killable-process.ts';
import { freePort } from './ports.ts';
import { AuditRecorder } from './relay-harness.ts';
import { waitFor } from './wait.ts';

/** The agent program as an operator runs it (bin/dmz-agent.js). */
export const AGENT_BIN = join(import.meta.dirname, '..', '..', 'bin', 'dmz-agent.js');

export interface AgentPlant {
  readonly dir: string;
  readonly url: string;
  readonly relay: RunningRelay | undefined;
  readonly audit: AuditRecorder;
  startRelay(limits?: Record<string, unknown>): Promise<RunningRelay>;
  stopRelay(): Promise<void>;
  /** A credential directory holding a freshly enrolled identity. */
  enroll(role: Role, name: string, options?: EnrollOptions): Promise<string>;
  config(raw: Record<string, unknown>): AgentConfig;
  /** The same settings as config(raw), written as the agent.yaml `dmz-agent run --config` reads. */
  configFile(file: string, raw: Record<string, unknown>): Promise<string>;
  /** `dmz-agent run --config <configFile>` as a process of its own (not started); logs in <dir>/logs. */
  agentProcess(name: string, configFile: string): Promise<KillableProcess>;
  close(): Promise<void>;
}

export interface AgentPlantOptions {
  /** The relay's policy; default: OT agents, and IT agents subscribing to everything. */
  readonly policy?: readonly Record<string, unknown>[];
  /** The `limits` of the relay the plant starts with (startRelay takes its own). */
  readonly limits?: Record<string, unknown>;
}

export async function createAgentPlant(options: AgentPlantOptions = {}): Promise<AgentPlant> {
  const dir = await mkdtemp(join(tmpdir(), 'dmz-plant-'));
  const caState = join(dir, 'relay-state');
  await createCaState(caState);
  const port = await freePort();
  const audit = new AuditRecorder();
  let relay: RunningRelay | undefined;
  const plant: AgentPlant = {
    dir,
    url: `wss://127.0.0.1:${port}/v1/agent`,
    audit,
    get relay() {
      return relay;
    },
    async startRelay(limits = {}) {
      const config = validateRelayConfig(
        {
          trustDomain: CA_STATE_TRUST_DOMAIN,
          state: caState,
          listen: {
            agents: { host: '127.0.0.1', port },
            admin: { host: '127.0.0.1', port: 0 },
            enrollment: { host: '127.0.0.1', port: 0, mode: 'off' },
          },
          log: { level: 'silent' },
          limits,
          policy: options.policy ?? [{ role: 'ot' }, { role: 'it', subscribe: ['#'] }],
        },
        caState,
      );
      relay = await startRelay({
        config,
        audit: createAuditLog(audit.stream),
        log: pino({ level: 'silent' }),
      });
      return relay;
    },
    async stopRelay() {
      const running = relay;
      relay = undefined;
      await running?.close();
    },
    async enroll(role, name, options) {
      const credentials = join(dir, `${name}-credentials`);
      await enrollIntoDirectory(caState, role, name, credentials, options);
      return credentials;
    },
    config(raw) {
      return validateAgentConfig(withRelay(raw), dir);
    },
    async configFile(file, raw) {
      // Validated first, so a test fails here, by key path, rather than in a child's stderr.
      validateAgentConfig(withRelay(raw), dir);
      const path = join(dir, file);
      await writeFile(path, stringify(withRelay(raw)));
      return path;
    },
    async agentProcess(name, configFile) {
      const logs = join(dir, 'logs');
      await mkdir(logs, { recursive: true });
      return new KillableProcess(name, [AGENT_BIN, 'run', '--config', configFile], logs);
    },
    async close() {
      await plant.stopRelay();
      await rm(dir, { recursive: true, force: true });
    },
  };
  /** Quick reconnects, so tests that restart the relay wait for little. */
  function withRelay(raw: Record<string, unknown>): Record<string, unknown> {
    return { relay: { url: plant.url, reconnectBase: '50ms', reconnectCap: '500ms' }, ...raw };
  }
  await plant.startRelay(options.limits);
  return plant;
}

/** The status an agent wrote to its state directory last (status.ts), if any yet. */
export async function readAgentStatus(stateDir: string): Promise<AgentStatus | undefined> {
  try {
    return JSON.parse(await readFile(join(stateDir, STATUS_FILE), 'utf8')) as AgentStatus;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * The settings of an OT agent that reads simulators, for plant.config or plant.configFile: each of
 * `sources` is the rest of a simulator section (interval, batch, limit, generate or points), named
 * `line1` unless it names itself.
 */
export function simulatorAgent(
  credentials: string,
  state: string,
  ...sources: Record<string, unknown>[]
): Record<string, unknown> {
  return {
    credentials,
    state,
    ot: { sources: sources.map((source) => ({ type: 'simulator', name: 'line1', ...source })) },
  };
}

/**
 * The settings of an IT agent that consumes OT agent `from` into a JSON Lines sink `files` in
 * `sinkDir`; `consume` adds to its consume section (a replay window).
 */
export function fileConsumerAgent(
  credentials: string,
  state: string,
  sinkDir: string,
  from = 'press-7',
  consume: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    credentials,
    state,
    it: {
      sinks: [{ name: 'files', type: 'jsonl', dir: sinkDir }],
      consume: [{ from, sink: 'files', ...consume }],
    },
  };
}

/** An agent in this process, as `dmz-agent run` starts it, its log silent. */
export function startAgent(config: AgentConfig): Promise<Agent> {
  return Agent.start({ config, configSource: 'agent.yaml', logger: pino({ level: 'silent' }) });
}

/**
 * Every complete line of a JSON Lines sink directory, parsed, in file order. A running sink may be
 * halfway through appending its last line: what follows the last newline is not a line yet.
 */
export async function readSinkLines(dir: string): Promise<Record<string, unknown>[]> {
  const names = (await readdir(dir)).filter((name) => name.endsWith('.jsonl')).sort();
  const lines: Record<string, unknown>[] = [];
  for (const name of names) {
    const complete = (await readFile(join(dir, name), 'utf8')).split('\n').slice(0, -1);
    for (const line of complete) lines.push(JSON.parse(line) as Record<string, unknown>);
  }
  return lines;
}

/** Per topic, the sink's lines (points and gaps) in file order; none for a sink not yet written. */
export async function sinkLinesByTopic(dir: string): Promise<Map<string, Record<string, unknown>[]>> {
  const byTopic = new Map<string, Record<string, unknown>[]>();
  let lines: Record<string, unknown>[];
  try {
    lines = await readSinkLines(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return byTopic;
    throw error;
  }
  for (const line of lines) {
    const topic = line['topic'] as string;
    const held = byTopic.get(topic);
    if (held === undefined) byTopic.set(topic, [line]);
    else held.push(line);
  }
  return byTopic;
}

/** Waits until the OT agent `ot` has logged each of its `streams` streams up to `lastSeq`. */
export async function waitUntilLogged(
  ot: Agent,
  streams: number,
  lastSeq: number,
  timeoutMs: number,
): Promise<void> {
  await waitFor(
    () => {
      const logged = ot.status().ot?.streams ?? [];
      return logged.length === streams && logged.every((stream) => stream.lastSeq === lastSeq);
    },
    `every stream logged up to ${lastSeq}`,
    timeoutMs,
  );
}

/**
 * Waits until every one of `topics` has point `last` as its last line in the sink at `dir`, then
 * fails unless each holds exactly 1..last, in order, once each.
 */
export async function assertEveryPointInSink(
  dir: string,
  topics: readonly string[],
  last: number,
  timeoutMs = 20_000,
): Promise<void> {
  await waitFor(
    async () => {
      const byTopic = await sinkLinesByTopic(dir);
      return topics.every((topic) => byTopic.get(topic)?.at(-1)?.['seq'] === last);
    },
    'every point in the sink',
    timeoutMs,
  );
  const byTopic = await sinkLinesByTopic(dir);
  for (const topic of topics) {
    assertRun(
      (byTopic.get(topic) ?? []).map((line) => line['seq'] as number),
      1,
      last,
      topic,
    );
  }
}

/**
 * Fails unless `seqs` is exactly first..last, in order, once each, saying in one line what is
 * wrong (a diff of thousands of numbers says nothing).
 */
export function assertRun(seqs: readonly number[], first: number, last: number, what: string): void {
  const wrong = seqs.findIndex((seq, index) => seq !== first + index);
  const seen = new Set(seqs);
  assert.ok(
    wrong === -1 && seqs.length === last - first + 1,
    `${what}: expected ${first}..${last} once each, in order; got ${seqs.length} points` +
      (wrong === -1 ? '' : `, ${seqs[wrong]} where ${first + wrong} belongs`) +
      `, ${seqs.length - seen.size} duplicates`,
  );
}

/**
 * A plant of real processes for system tests: a CA state directory, a relay configuration on a
 * fixed loopback port (so agents reconnect to the same URL after a relay restart), an OT agent
 * (simulator source) and an IT agent (one JSON Lines sink consuming from it), each enrolled into a
 * credential directory as `dmz-agent enroll` leaves it, each a `dmz-relay` or `dmz-agent run`
 * process started from the bin/ scripts, as an operator runs them.
 */
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { CA_STATE_TRUST_DOMAIN, createCaState, enrollIntoDirectory } from './ca-state.ts';
import { KillableProcess } from './killable-process.ts';
import { freePort } from './ports.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const RELAY_BIN = join(ROOT, 'bin', 'dmz-relay.js');
const AGENT_BIN = join(ROOT, 'bin', 'dmz-agent.js');

export const OT_AGENT = 'press-7';
export const IT_AGENT = 'historian';
/**
 * What each process writes to stderr once it does its job: the relay listens (relay/cli.ts), an
 * agent has its link to the relay (agents/runtime/link-supervisor.ts) and so moves points.
 */
export const READY_LINES = { relay: 'relay listening', agent: 'connected to the relay' } as const;

export interface ProcessPlantOptions {
  /** The OT agent's `ot.sources` entries. */
  readonly sources: readonly Record<string, unknown>[];
  /** The IT agent's one sink (with a `name`); default the JSON Lines sink `files` in `sinkDir`. */
  readonly sink?: Readonly<Record<string, unknown>> & { readonly name: string };
}

export interface ProcessPlant {
  readonly dir: string;
  /** The IT agent's sink directory. */
  readonly sinkDir: string;
  readonly relay: KillableProcess;
  readonly ot: KillableProcess;
  readonly it: KillableProcess;
}

export async function createProcessPlant(options: ProcessPlantOptions): Promise<ProcessPlant> {
  const dir = await mkdtemp(join(tmpdir(), 'dmz-system-'));
  const logDir = join(dir, 'logs');
  await mkdir(logDir);
  const caState = join(dir, 'relay-state');
  await createCaState(caState);
  await enrollIntoDirectory(caState, 'ot', OT_AGENT, join(dir, 'ot-credentials'));
  await enrollIntoDirectory(caState, 'it', IT_AGENT, join(dir, 'it-credentials'));
  const port = await freePort();
  await writeFile(
    join(dir, 'relay.yaml'),
    stringify({
      trustDomain: CA_STATE_TRUST_DOMAIN,
      state: './relay-state',
      listen: {
        agents: { host: '127.0.0.1', port },
        admin: { host: '127.0.0.1', port: 0 },
        enrollment: { host: '127.0.0.1', port: 0, mode: 'off' },
      },
      log: { level: 'info', audit: '-' },
      policy: [{ role: 'ot' }, { role: 'it', subscribe: ['#'] }],
    }),
  );
  // Quick reconnects: the relay comes back within seconds, and the test waits for it.
  const relay = { url: `wss://127.0.0.1:${port}/v1/agent`, reconnectBase: '50ms', reconnectCap: '1s' };
  await writeFile(
    join(dir, 'ot.yaml'),
    stringify({
      credentials: './ot-credentials',
      state: './ot-state',
      relay,
      ot: { sources: options.sources },
    }),
  );
  const sinkDir = join(dir, 'sink');
  await writeFile(
    join(dir, 'it.yaml'),
    stringify({
      credentials: './it-credentials',
      state: './it-state',
      relay,
      it: {
        sinks: [options.sink ?? { name: 'files', type: 'jsonl', dir: './sink' }],
        consume: [{ from: OT_AGENT, sink: options.sink?.name ?? 'files' }],
      },
    }),
  );
  return {
    dir,
    sinkDir,
    relay: new KillableProcess('relay', [RELAY_BIN, '--config', join(dir, 'relay.yaml')], logDir),
    ot: new KillableProcess('ot', [AGENT_BIN, 'run', '--config', join(dir, 'ot.yaml')], logDir),
    it: new KillableProcess('it', [AGENT_BIN, 'run', '--config', join(dir, 'it.yaml')], logDir),
  };
}

/**
 * What runs on the lab's hosts, set up as an operator sets it up, with the product's own commands
 * run inside each host's namespace: on the DMZ appliance `dmz-pki init` and `dmz-relay` (agent port
 * and enrollment port in `auto` mode); one-time tokens from `dmz-pki token create`, redeemed by
 * `dmz-agent enroll` on each agent host through the firewalls (the appliance's opened for that
 * host alone while it enrolls); on the OT host Debian's pymodbus server as the PLC (on the device
 * network's address, so that only the firewall keeps others out) and `dmz-agent run` reading it; on the IT host `dmz-agent run` with a JSON Lines sink and its
 * local API, whose write key (`dmz-agent writes key`) the OT agent's config pins. The files are in
 * configs.ts.
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { KillableProcess } from '../../test/support/killable-process.ts';
import { SYSTEM_PYTHON } from '../../test/support/pymodbus-device.ts';
import { runTool } from '../../test/support/system-tools.ts';
import { waitFor } from '../../test/support/wait.ts';
import {
  IT_AGENT,
  itAgentConfig,
  OT_AGENT,
  otAgentConfig,
  plcData,
  relayConfig,
  TRUST_DOMAIN,
  type WriteKey,
} from './configs.ts';
import { closeEnrollment, openEnrollment } from './firewalls.ts';
import { prepareApi, type LabApi } from './it-api.ts';
import { LAB_PORTS } from './ports.ts';
import { listeningPorts } from './sockets.ts';
import { IT_HOST, OT_HOST, RELAY_HOST, RELAY_IT_LEG, relayLegFor, type LabHost } from './zones.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const BIN = {
  'dmz-pki': join(ROOT, 'bin', 'dmz-pki.js'),
  'dmz-relay': join(ROOT, 'bin', 'dmz-relay.js'),
  'dmz-agent': join(ROOT, 'bin', 'dmz-agent.js'),
} as const;
const MODBUS_SERVER = join(ROOT, 'test', 'system', 'pymodbus-server.py');

/** A process on a loaded 2-core machine, through tsx, is up within this. */
const START_BOUND_MS = 90_000;
/** `auto` enrollment opens within a second of `token create` (relay/server/pki-upkeep.ts). */
const ENROLLMENT_OPEN_BOUND_MS = 30_000;
/** How long the firewall lets an agent host reach the enrollment port, as README's example. */
const ENROLLMENT_WINDOW = '1h';
/** The host an agent of each role enrolls from. */
const ENROLLING_HOST = { ot: OT_HOST, it: IT_HOST } as const;

/** The enrollment URL a token carries: the relay's leg its agent's host reaches. */
function enrollmentUrl(host: LabHost): string {
  return `https://${relayLegFor(host).address}:${LAB_PORTS.enrollment}`;
}

export interface LabPlant {
  readonly dir: string;
  readonly sinkDir: string;
  readonly relay: KillableProcess;
  readonly modbus: KillableProcess;
  readonly ot: KillableProcess;
  readonly it: KillableProcess;
  readonly api: LabApi;
  /**
   * Creates a one-time token on the appliance (the enrollment port opens while one is
   * outstanding); resolves with its id, for `revokeToken`.
   */
  createToken(name: string, role: 'ot' | 'it'): Promise<string>;
  revokeToken(jti: string): Promise<void>;
}

/** Runs a product command on `host` to its end; its stdout, or an error with its stderr. */
async function runOn(host: LabHost, command: keyof typeof BIN, args: readonly string[]): Promise<string> {
  const run = await runTool('ip', ['netns', 'exec', host.namespace, process.execPath, BIN[command], ...args]);
  if (run.status !== 0) {
    throw new Error(
      `${command} ${args.join(' ')} on ${host.zone} failed (${run.status}): ${run.stderr.trim()}`,
    );
  }
  return run.stdout;
}

function processOn(
  host: LabHost,
  name: string,
  program: string,
  args: readonly string[],
  logDir: string,
): KillableProcess {
  return new KillableProcess(name, [program, ...args], logDir, [
    'ip',
    'netns',
    'exec',
    host.namespace,
    program === MODBUS_SERVER ? SYSTEM_PYTHON : process.execPath,
  ]);
}

async function started(child: KillableProcess, readyLine: string): Promise<void> {
  child.start();
  await waitFor(
    () => {
      const exited = child.unexpectedExit();
      if (exited !== undefined)
        throw new Error(`${child.name} exited (${JSON.stringify(exited.exit)}):\n${child.stderrTail()}`);
      return child.stderrIncludes(readyLine);
    },
    `${child.name}: "${readyLine}"`,
    START_BOUND_MS,
    200,
  );
}

export async function startPlant(dir: string): Promise<LabPlant> {
  const logDir = join(dir, 'logs');
  await mkdir(logDir, { recursive: true });
  const relayDir = join(dir, 'dmz');
  const state = join(relayDir, 'state');
  await mkdir(relayDir, { recursive: true });
  await runOn(RELAY_HOST, 'dmz-pki', [
    '--state',
    state,
    'init',
    '--trust-domain',
    TRUST_DOMAIN,
    '--ip',
    RELAY_HOST.address,
    '--ip',
    RELAY_IT_LEG.address,
    '--enroll-url',
    enrollmentUrl(OT_HOST),
    '--enroll-url',
    enrollmentUrl(IT_HOST),
  ]);
  await writeFile(join(relayDir, 'relay.yaml'), stringify(relayConfig()));
  const relay = processOn(
    RELAY_HOST,
    'relay',
    BIN['dmz-relay'],
    ['--config', join(relayDir, 'relay.yaml')],
    logDir,
  );
  await started(relay, 'relay listening');

  const createToken = async (name: string, role: 'ot' | 'it') => {
    const created = await runOn(RELAY_HOST, 'dmz-pki', [
      '--state',
      state,
      'token',
      'create',
      '--name',
      name,
      '--role',
      role,
      '--url',
      enrollmentUrl(ENROLLING_HOST[role]),
      '--json',
    ]);
    return JSON.parse(created) as { token: string; jti: string };
  };
  const enroll = async (host: LabHost, name: string, role: 'ot' | 'it') => {
    const hostDir = join(dir, host.zone);
    await mkdir(hostDir, { recursive: true });
    const tokenFile = join(hostDir, 'token');
    await writeFile(tokenFile, (await createToken(name, role)).token, { mode: 0o600 });
    await waitFor(
      async () => (await listeningPorts(RELAY_HOST)).some((socket) => socket.port === LAB_PORTS.enrollment),
      'the enrollment port to open for the token',
      ENROLLMENT_OPEN_BOUND_MS,
      200,
    );
    // The firewall opens the port for this host alone, and closes it once it has enrolled.
    await openEnrollment(host, ENROLLMENT_WINDOW);
    await runOn(host, 'dmz-agent', [
      'enroll',
      '--token-file',
      tokenFile,
      '--dir',
      join(hostDir, 'credentials'),
    ]);
    await closeEnrollment();
  };
  await enroll(OT_HOST, OT_AGENT, 'ot');
  await enroll(IT_HOST, IT_AGENT, 'it');

  const plcFile = join(dir, 'ot', 'plc.json');
  await writeFile(plcFile, JSON.stringify(plcData()));
  const modbus = processOn(
    OT_HOST,
    'modbus',
    MODBUS_SERVER,
    ['--host', OT_HOST.address, '--port', String(LAB_PORTS.modbus), '--data', plcFile, '--quiet'],
    logDir,
  );
  modbus.start();
  await waitFor(
    async () => {
      if (modbus.unexpectedExit() !== undefined)
        throw new Error(`the Modbus server exited:\n${modbus.stderrTail()}`);
      return (await listeningPorts(OT_HOST)).some((socket) => socket.port === LAB_PORTS.modbus);
    },
    'the Modbus server to listen',
    START_BOUND_MS,
    200,
  );
  const sinkDir = join(dir, 'it', 'sink');
  const api = await prepareApi(join(dir, 'it'));
  await writeFile(join(dir, 'it', 'agent.yaml'), stringify(itAgentConfig(api)));
  // The OT operator pins the IT agent's own write key: a relay holding the CA cannot sign for it.
  const writeKey = JSON.parse(
    await runOn(IT_HOST, 'dmz-agent', ['writes', 'key', '--config', join(dir, 'it', 'agent.yaml'), '--json']),
  ) as WriteKey;
  await writeFile(join(dir, 'ot', 'agent.yaml'), stringify(otAgentConfig(writeKey)));
  const ot = processOn(
    OT_HOST,
    'ot-agent',
    BIN['dmz-agent'],
    ['run', '--config', join(dir, 'ot', 'agent.yaml')],
    logDir,
  );
  const it = processOn(
    IT_HOST,
    'it-agent',
    BIN['dmz-agent'],
    ['run', '--config', join(dir, 'it', 'agent.yaml')],
    logDir,
  );
  await Promise.all([started(ot, 'connected to the relay'), started(it, 'connected to the relay')]);

  return {
    dir,
    sinkDir,
    relay,
    modbus,
    ot,
    it,
    api,
    createToken: async (name, role) => (await createToken(name, role)).jti,
    revokeToken: async (jti) => {
      await runOn(RELAY_HOST, 'dmz-pki', ['--state', state, 'token', 'revoke', jti]);
    },
  };
}

/** The last value of each topic in the IT agent's JSON Lines sink, as a historian would read it. */
export async function sinkValues(sinkDir: string): Promise<Map<string, unknown>> {
  const values = new Map<string, unknown>();
  let names: string[];
  try {
    names = (await readdir(sinkDir)).filter((name) => name.endsWith('.jsonl')).sort();
  } catch {
    return values;
  }
  for (const name of names) {
    for (const line of (await readFile(join(sinkDir, name), 'utf8')).split('\n')) {
      try {
        const point = JSON.parse(line) as { topic?: string; value?: unknown };
        if (typeof point.topic === 'string' && 'value' in point) values.set(point.topic, point.value);
      } catch {
        // a line being written
      }
    }
  }
  return values;
}

/**
 * `npm run demo`: the whole system on this machine, set up and run the way an operator would, with
 * the product's own commands as processes: `dmz-pki init` makes a CA in the demo's state directory,
 * `dmz-relay` starts on loopback, `dmz-pki token create` and `dmz-agent enroll` enroll a press (OT)
 * and a historian (IT), and `dmz-agent run` runs both. The press's agent polls a simulated PLC, a
 * real Modbus TCP server in this process (demo/plc.ts), and a simulator; the historian keeps every
 * point in JSON Lines files and serves the dashboard, from which a visitor signed in as the API's
 * one user (`dmz-agent api user add`, a password made for the run and printed) can write the press's
 * speed setpoint (signed by the historian's own key, checked by the press's agent). Ctrl-C stops
 * everything; `--revoke-after N` revokes the historian after N seconds and shows it cut.
 */
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import {
  EXIT,
  fileError,
  invalidArgument,
  parseCommandLine,
  processOutput,
  quote,
  reportError,
} from '../relay/protocol/command-line.ts';
import { DmzError } from '../relay/protocol/errors.ts';
import type { Role } from '../relay/protocol/identity.ts';
import { run, start, stopAll, stopCommand } from './demo/commands.ts';
import { IT_AGENT, itYaml, OPERATOR, OT_AGENT, otYaml, relayYaml, type DemoPorts } from './demo/configs.ts';
import {
  addOperator,
  historianApi,
  points,
  relayConnected,
  type HistorianApi,
} from './demo/historian-api.ts';
import { DemoPlc } from './demo/plc.ts';

const PROGRAM = 'demo';
const USAGE = `Usage: npm run demo -- [--port N] [--seconds N] [--revoke-after N] [--dir DIR]

Sets up a CA, a relay and two enrolled agents on this machine (all on loopback), with a simulated
PLC as a Modbus TCP server, and serves the IT agent's live dashboard. Runs until Ctrl-C.

Options:
  --port N          the dashboard's port (default 8080, or a free one if 8080 is taken)
  --seconds N       stop by itself after N seconds (default 0: run until Ctrl-C)
  --revoke-after N  after N seconds, revoke the IT agent and show it cut off (default: never)
  --dir DIR         where the demo's state, configs, logs and data go (default .demo; emptied
                    first only if the demo made it)
  -h, --help        show this help`;
/** Exit statuses of a process stopped by SIGINT and SIGTERM, as a shell reports them (128 + n). */
const SIGNAL_EXIT = { SIGINT: 130, SIGTERM: 143 } as const;
/** The port README names for the dashboard. */
const DEFAULT_DASHBOARD_PORT = 8080;
/** How long the demo waits for a part to come up: tsx compiles each command at its start. */
const START_BOUND_MS = 60_000;
/**
 * The configs 0644 whatever the umask: the commands refuse one a group could change (a umask of
 * 002 with a group of others), as it says who may do what.
 */
const CONFIG_FILE = { mode: 0o644 } as const;

const { values } = (() => {
  try {
    return parseCommandLine({
      options: {
        port: { type: 'string' },
        seconds: { type: 'string', default: '0' },
        'revoke-after': { type: 'string' },
        dir: { type: 'string', default: '.demo' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (error) {
    process.exit(reportError(PROGRAM, processOutput, error, "see 'npm run demo -- --help'"));
  }
})();
if (values.help === true) {
  processOutput.stdout(`${USAGE}\n`);
  process.exit(EXIT.ok);
}

function wholeNumber(option: string, text: string | undefined, max: number): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d{1,7}$/.test(text) || Number(text) > max) {
    const error = invalidArgument(`--${option} must be a whole number up to ${max}: ${quote(text)}`);
    process.exit(reportError(PROGRAM, processOutput, error, "see 'npm run demo -- --help'"));
  }
  return Number(text);
}
const seconds = wholeNumber('seconds', values.seconds, 9_999_999) ?? 0;
const revokeAfter = wholeNumber('revoke-after', values['revoke-after'], 9_999_999);
const requestedPort = wholeNumber('port', values.port, 65_535);
const dir = resolve(values.dir);
const say = (text: string) => process.stdout.write(`\n== ${text}\n`);

let plc: DemoPlc | undefined;
let stopping: Promise<void> | undefined;
/** Stops what the demo started: agents first (they flush), then the relay, then the PLC. */
function stopEverything(): Promise<void> {
  stopping ??= stopAll().then(() => plc?.stop());
  return stopping;
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    say(`${signal}: stopping the agents, the relay and the PLC`);
    void stopEverything().finally(() => process.exit(SIGNAL_EXIT[signal]));
  });
}

async function freePort(preferred = 0): Promise<number> {
  const server = createServer();
  const listening = await new Promise<boolean>((done) => {
    server.once('error', () => done(false));
    server.listen(preferred, '127.0.0.1', () => done(true));
  });
  if (!listening) return freePort(0);
  const { port } = server.address() as AddressInfo;
  await new Promise((done) => server.close(done));
  return port;
}

/**
 * The demo empties its directory first, so a second run starts clean; it writes this file there so
 * that it empties only a directory it made. `--dir ~` or `--dir /etc` by a slip must not be wiped.
 */
const DEMO_MARKER = '.dmz-demo';

/** Clears `dir` for a new run when it is the demo's own (or empty, or absent); refuses any other. */
async function prepareDirectory(): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') entries = [];
    else if (code === 'ENOTDIR')
      throw new DmzError('CLI_ERR_FILE', `--dir ${quote(dir)} is not a directory`, {
        hint: "give --dir a directory of the demo's own (it is created if absent)",
      });
    else throw fileError('read the directory', dir, error, 'give --dir a directory this user may write');
  }
  if (entries.length > 0 && !entries.includes(DEMO_MARKER)) {
    throw new DmzError('CLI_ERR_FILE', `--dir ${quote(dir)} is not empty and was not made by the demo`, {
      hint: 'give --dir a new or empty directory; the demo empties its directory on each run',
    });
  }
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, 'logs'), { recursive: true, mode: 0o700 });
  await writeFile(join(dir, DEMO_MARKER), 'made by npm run demo; emptied on its next run\n');
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + START_BOUND_MS;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) {
      throw new DmzError('CLI_ERR_UNEXPECTED', `${what} did not happen within ${START_BOUND_MS / 1000} s`, {
        hint: `see the logs in ${quote(join(dir, 'logs'))}`,
      });
    }
    await new Promise((done) => setTimeout(done, 200));
  }
}

async function main(): Promise<void> {
  await prepareDirectory();
  const state = join(dir, 'state');
  const ports: DemoPorts = {
    agents: await freePort(),
    enrollment: await freePort(),
    admin: await freePort(),
    plc: await freePort(),
    api: await freePort(requestedPort ?? DEFAULT_DASHBOARD_PORT),
  };
  const log = (name: string) => join(dir, 'logs', `${name}.log`);

  say("dmz-pki init: the relay's own CA, server certificate and token-signing key");
  const fingerprint = await run('dmz-pki', [
    '--state',
    state,
    'init',
    '--trust-domain',
    'demo.plant',
    '--dns',
    'localhost',
    '--ip',
    '127.0.0.1',
    '--enroll-url',
    `https://127.0.0.1:${ports.enrollment}`,
  ]);
  process.stdout.write(`CA fingerprint: ${fingerprint}`);

  const relayConfig = join(dir, 'relay.yaml');
  await writeFile(relayConfig, relayYaml(ports), CONFIG_FILE);
  say(`dmz-relay --config ${relayConfig}`);
  start('dmz-relay', ['--config', relayConfig], log('relay'));
  await waitFor('the relay listening', async () => {
    const response = await fetch(`http://127.0.0.1:${ports.admin}/healthz`);
    return response.ok ? true : undefined;
  });

  const enroll = async (name: string, role: Role) => {
    say(
      `dmz-pki token create --name ${name} --role ${role} | dmz-agent enroll --token - --dir agents/${name}`,
    );
    const token = (
      await run('dmz-pki', ['--state', state, 'token', 'create', '--name', name, '--role', role])
    ).trim();
    process.stdout.write(
      await run('dmz-agent', ['enroll', '--token', '-', '--dir', join(dir, 'agents', name)], token),
    );
  };
  await enroll(OT_AGENT, 'ot');
  await enroll(IT_AGENT, 'it');

  const hashFile = join(dir, OPERATOR.passwordHashFile);
  say(`dmz-agent api user add ${OPERATOR.name} --role write --password-hash-file ${hashFile}`);
  const password = await addOperator(hashFile);
  process.stdout.write("the dashboard's user: the API takes a write from a named user of role write alone\n");

  const itConfig = join(dir, 'it.yaml');
  await writeFile(itConfig, itYaml(ports), CONFIG_FILE);
  say(`dmz-agent writes key --config ${itConfig}: the historian's own write key, pinned on the press`);
  const key = JSON.parse(await run('dmz-agent', ['writes', 'key', '--config', itConfig, '--json'])) as {
    kid: string;
    pem: string;
  };
  process.stdout.write(`write key ${key.kid}: only commands signed with it can move the setpoint\n`);
  const otConfig = join(dir, 'ot.yaml');
  await writeFile(otConfig, otYaml(ports, key.pem), CONFIG_FILE);

  say(`the press's PLC: a Modbus TCP server on 127.0.0.1:${ports.plc}`);
  plc = await DemoPlc.start(ports.plc);

  say(`dmz-agent run --config ${otConfig}   (press-7: polls the PLC, logs every point, serves replays)`);
  const ot = start('dmz-agent', ['run', '--config', otConfig], log('press-7'));
  say(`dmz-agent run --config ${itConfig}   (historian: JSON Lines files, the API and the dashboard)`);
  const it = start('dmz-agent', ['run', '--config', itConfig], log('historian'));
  const api = historianApi(ports.api, password);
  await waitFor('the first points on the dashboard', async () =>
    (await points(api)).length >= 8 ? true : undefined,
  );

  say(`dashboard: ${api.url}`);
  process.stdout.write(
    [
      `  sign in:  ${OPERATOR.name}, password ${password}   (role write; a new password each run)`,
      `  API:      curl -u ${OPERATOR.name}:${password} ${api.url}api/v1/points   (and /history, /stream, /status, /openapi.json)`,
      `  configs:  ${relayConfig}, ${otConfig}, ${itConfig}`,
      `  data:     ${join(dir, 'points')} (JSON Lines), logs in ${join(dir, 'logs')}`,
      `  write:    signed in, the speed setpoint from the page (0..120 rpm; 500 is refused by the press)`,
      '  Ctrl-C stops everything.',
      '',
    ].join('\n'),
  );

  const startedAt = Date.now();
  const deadline = seconds > 0 ? startedAt + seconds * 1000 : Number.POSITIVE_INFINITY;
  let revoked = false;
  while (Date.now() < deadline) {
    await new Promise((done) => setTimeout(done, Math.min(5000, deadline - Date.now())));
    const shown = await points(api).catch(() => []);
    const line = shown
      .filter((point) => /\/plc\/(temperature|speed|vibration)$/.test(point.topic))
      .map(
        (point) =>
          `${point.topic.split('/').at(-1)} ${String(point.value)}${point.unit === undefined ? '' : ` ${point.unit}`} (${point.quality}${point.reason === undefined ? '' : `: ${point.reason}`})`,
      )
      .join(', ');
    process.stdout.write(`historian <- ${line}\n`);
    if (revokeAfter !== undefined && !revoked && Date.now() - startedAt >= revokeAfter * 1000) {
      revoked = true;
      await revokeHistorian(state, api);
    }
  }
  await stopCommand(it);
  await stopCommand(ot);
  await stopEverything();
  say(`done. Audit log: ${join(dir, 'audit.log')}`);
}

async function revokeHistorian(state: string, api: HistorianApi): Promise<void> {
  say(`dmz-pki revoke ${IT_AGENT}: its live connection is cut within a second, every reconnect refused`);
  const revokedAt = Date.now();
  process.stdout.write(await run('dmz-pki', ['--state', state, 'revoke', IT_AGENT]));
  await waitFor('the historian cut off', async () => ((await relayConnected(api)) ? undefined : true));
  process.stdout.write(
    `historian disconnected ${Date.now() - revokedAt} ms after the revoke command started; the dashboard shows the relay DISCONNECTED\n`,
  );
}

main().catch(async (error: unknown) => {
  process.exitCode = reportError(PROGRAM, processOutput, error);
  await stopEverything();
});

/**
 * `npm run demo`: the whole system on this machine, set up the way an operator would: a CA and
 * relay state with `dmz-pki init`, the relay with `dmz-relay`, two agents enrolled with one-time
 * tokens through `dmz-agent enroll`, then a simulated press (OT) and historian (IT) exchanging
 * live data and a setpoint write through the relay. It ends by revoking the historian and showing
 * its connection cut and its reconnection refused.
 *
 * Options: --seconds N (how long the plant runs; 0 = until Ctrl-C; default 20), --dir DIR.
 */
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { loadCredentials } from '../agents/credentials.ts';
import { RelayLink } from '../agents/link/relay-link.ts';
import { decodePointBatch } from '../agents/points/batch.ts';
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
import { run, start, stopAll } from './demo/commands.ts';
import { decodeReading, Press } from './demo/plant.ts';

const PROGRAM = 'demo';
const USAGE = `Usage: npm run demo -- [--seconds N] [--dir DIR]

Sets up a CA, a relay and two enrolled agents on this machine, moves live data and setpoint
writes between them for N seconds, then revokes the IT agent and shows it cut.

Options:
  --seconds N   how long the plant runs before the revocation (default 20; 0 = until Ctrl-C)
  --dir DIR     where the demo's state, agents and audit log go (default .demo; emptied first
                only if the demo made it)
  -h, --help    show this help`;
/** Exit statuses of a process stopped by SIGINT and SIGTERM, as a shell reports them (128 + n). */
const SIGNAL_EXIT = { SIGINT: 130, SIGTERM: 143 } as const;

const { values } = (() => {
  try {
    return parseCommandLine({
      options: {
        seconds: { type: 'string', default: '20' },
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
if (!/^\d{1,7}$/.test(values.seconds)) {
  const error = invalidArgument(`--seconds must be a whole number of seconds: ${quote(values.seconds)}`);
  process.exit(reportError(PROGRAM, processOutput, error, "see 'npm run demo -- --help'"));
}
const seconds = Number(values.seconds);
const dir = resolve(values.dir);
const say = (text: string) => process.stdout.write(`\n== ${text}\n`);

// Stopping the demo stops what it started: the relay and any command still running.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    say(`${signal}: stopping the relay and the agents`);
    void stopAll().finally(() => process.exit(SIGNAL_EXIT[signal]));
  });
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
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
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, DEMO_MARKER), 'made by npm run demo; emptied on its next run\n');
}

async function main(): Promise<void> {
  await prepareDirectory();
  const state = join(dir, 'state');
  const [agentPort, enrollPort, adminPort] = [await freePort(), await freePort(), await freePort()];

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
    `https://127.0.0.1:${enrollPort}`,
  ]);
  process.stdout.write(`CA fingerprint: ${fingerprint}`);

  const configPath = join(dir, 'relay.yaml');
  await writeFile(
    configPath,
    [
      'trustDomain: demo.plant',
      'state: ./state',
      'listen:',
      `  agents: { host: 127.0.0.1, port: ${agentPort} }`,
      `  enrollment: { host: 127.0.0.1, port: ${enrollPort}, mode: auto }`,
      `  admin: { host: 127.0.0.1, port: ${adminPort} }`,
      'log: { level: warn, audit: ./audit.log }',
      'policy:',
      '  - role: ot',
      '  - agent: historian',
      '    subscribe: ["press-7/#"]',
      '    command: ["press-7/setpoints/+"]',
      '',
    ].join('\n'),
  );
  say(`dmz-relay --config ${configPath}`);
  const relay = start('dmz-relay', ['--config', configPath]);
  relay.stderr?.on('data', (chunk: Buffer) => process.stderr.write(`[relay] ${chunk.toString()}`));
  const stopRelay = () =>
    new Promise((done) => {
      relay.once('exit', done);
      relay.kill('SIGTERM');
    });

  try {
    await waitForHealth(adminPort);
    const enroll = async (name: string, role: Role) => {
      say(`dmz-pki token create --name ${name} --role ${role}; dmz-agent enroll --token - --dir ...`);
      const token = (
        await run('dmz-pki', ['--state', state, 'token', 'create', '--name', name, '--role', role])
      ).trim();
      const agentDir = join(dir, 'agents', name);
      process.stdout.write(await run('dmz-agent', ['enroll', '--token', '-', '--dir', agentDir], token));
      return loadCredentials(agentDir);
    };
    const pressCredentials = await enroll('press-7', 'ot');
    const historianCredentials = await enroll('historian', 'it');
    const url = `wss://127.0.0.1:${agentPort}/v1/agent`;

    say('press-7 (OT) and historian (IT) connect out to the relay; the historian opens a session');
    const press = new Press();
    const pressClient = await RelayLink.connect(
      { url, ...pressCredentials },
      { request: (request) => press.answerSetpoint(request.topic, request.payload) },
    );
    press.start(pressClient, 'press-7', 500);
    let lastPrint = 0;
    const historian = await RelayLink.connect(
      { url, ...historianCredentials },
      {
        delivery: (frame) => {
          if (Date.now() - lastPrint < 1000) return;
          if (!frame.topic.endsWith('/speed')) return;
          lastPrint = Date.now();
          const [point] = decodePointBatch(frame.points, frame.count);
          if (point === undefined) return;
          const reading = decodeReading(point);
          if (reading === undefined) return;
          process.stdout.write(
            `historian <- ${frame.topic} = ${reading.value} (seq ${frame.seq}, ${Date.now() - reading.ts} ms old)\n`,
          );
        },
      },
    );
    const session = await historian.openSession('press-7', 'press-7/#');
    await historian.subscribe(session.session, 'press-7/+');

    const deadline = seconds > 0 ? Date.now() + seconds * 1000 : Number.POSITIVE_INFINITY;
    let setpoint = 70;
    while (Date.now() < deadline) {
      await new Promise((done) => setTimeout(done, Math.min(5000, deadline - Date.now())));
      if (Date.now() >= deadline) break;
      try {
        const reply = await historian.request(
          session.session,
          'press-7/setpoints/speed',
          new TextEncoder().encode(String(setpoint)),
          2000,
        );
        process.stdout.write(
          `historian -> press-7/setpoints/speed = ${setpoint}: ${new TextDecoder().decode(reply)}\n`,
        );
      } catch (error) {
        process.stdout.write(`historian -> setpoint ${setpoint} refused: ${(error as Error).message}\n`);
      }
      setpoint = setpoint === 70 ? 500 : 70; // every other write is out of the press's range
    }

    say('dmz-pki revoke historian: the live connection is cut within a second, reconnection refused');
    const revokedAt = Date.now();
    const cut = new Promise<number>((done) => {
      const poll = setInterval(() => {
        if (historian.closed) {
          clearInterval(poll);
          done(Date.now() - revokedAt);
        }
      }, 10);
    });
    process.stdout.write(await run('dmz-pki', ['--state', state, 'revoke', 'historian']));
    process.stdout.write(`historian connection closed ${await cut} ms after the revoke command started\n`);
    await RelayLink.connect({ url, ...historianCredentials, connectTimeoutMs: 3000 }).then(
      () => process.stdout.write('UNEXPECTED: the revoked historian reconnected\n'),
      (error: unknown) => process.stdout.write(`historian reconnect refused: ${(error as Error).message}\n`),
    );
    press.stop();
    await pressClient.close();
    say(`done. Audit log: ${join(dir, 'audit.log')}`);
  } finally {
    await stopRelay();
  }
}

async function waitForHealth(port: number): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`http://127.0.0.1:${port}/healthz`);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((done) => setTimeout(done, 100));
  }
  throw new Error('relay did not become healthy within 15 s');
}

main().catch(async (error: unknown) => {
  process.exitCode = reportError(PROGRAM, processOutput, error);
  await stopAll();
});

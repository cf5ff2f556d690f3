/**
 * `dmz-agent <command>`: the agent program. Commands are dispatched from one table, so adding
 * one (`run`) is one entry. Exit codes: 0 done, 1 failed, 2 invalid command line. Errors are
 * reported as every command of the product reports them (relay/protocol/command-line.ts).
 */
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import {
  EXIT,
  fileError,
  flushOutput,
  invalidArgument,
  asksForVersion,
  parseCommandLine,
  processOutput,
  quote,
  reportError,
  usageError,
  versionLine,
  type ExitStatus,
  type Output,
} from '../relay/protocol/command-line.ts';
import { DmzError } from '../relay/protocol/errors.ts';
import type { AgentRunControl } from './runtime/run-command.ts';

/** A token is < 4 KiB; reading stops here so a wrong file or an endless pipe cannot eat memory. */
const MAX_TOKEN_INPUT_BYTES = 64 * 1024;
const STDIN = '-';

const ENROLL_USAGE = `Usage: dmz-agent enroll --token TOKEN --dir DIR [--force] [--json]

Enrolls this host with the relay named in the one-time TOKEN (from \`dmz-pki token create\`).
The private key is generated here and never leaves this host; the relay is trusted only after
it proves it holds the CA pinned in the token.

Options:
  --token TOKEN      the enrollment token; \`--token -\` reads it from standard input
  --token-file FILE  read the token from FILE (\`-\` for standard input); keeps it out of the
                     process list, where --token TOKEN is visible to other local users
  --dir DIR          credential directory (created 0700): key.pem, cert.pem, ca.pem, identity.json
  --force            replace an identity already enrolled in DIR
  --json             print the enrolled identity as JSON
  -h, --help         show this help`;

interface Command {
  readonly summary: string;
  readonly run: (
    argv: string[],
    env: NodeJS.ProcessEnv,
    output: Output,
    control: AgentRunControl,
  ) => Promise<ExitStatus>;
}

const RUN_USAGE = `Usage: dmz-agent run --config FILE

Runs the agent: connects out to the relay with the credentials \`dmz-agent enroll\` stored and,
by the role of its certificate, logs and serves this plant's points (ot) or consumes them into
its sinks (it). Nothing listens unless \`admin\` is configured (loopback only).
SIGTERM or SIGINT stops it once everything durable is on disk (exit 0); SIGHUP reloads the log level
and the API's users (it.api.users).

Options:
  --config FILE  the agent configuration (agent.yaml; see README, "dmz-agent run --config agent.yaml")
  -h, --help     show this help`;

const STATUS_USAGE = `Usage: dmz-agent status --config FILE [--json]

Shows the agent's state: running or not, the relay link and since when, sessions, the last
sequence of each stream, log usage and certificate expiry. Exit status 0 when the agent runs,
1 when it does not (its last status is shown).

Options:
  --config FILE  the agent configuration the agent runs with
  --json         print the status as one JSON document
  -h, --help     show this help`;

const COMMANDS: Readonly<Record<string, Command>> = {
  enroll: { summary: 'enroll this host with a relay, using a one-time token', run: runEnroll },
  run: { summary: 'run the agent (its role comes from its certificate)', run: runRun },
  status: { summary: "show a running agent's state", run: runStatus },
  write: {
    summary: 'send one signed write to an OT agent (as this IT agent, while it is not running)',
    run: async (argv, _env, output) => (await import('./it/write-command.ts')).runWriteCommand(argv, output),
  },
  writes: {
    summary: 'the local write window (writes open|close|status); an IT write key (writes key)',
    run: async (argv, _env, output) =>
      (await import('./ot/writes/writes-cli.ts')).runWritesCommand(argv, output),
  },
  api: {
    summary: "make a credential for a user of the IT agent's API (api user add)",
    run: async (argv, _env, output) =>
      (await import('./it/api/api-user-command.ts')).runApiCommand(argv, output),
  },
  opcua: {
    summary: "trust an OPC UA server's certificate (opcua trust)",
    run: async (argv, _env, output) =>
      (await import('./ot/sources/opcua/trust-cli.ts')).runOpcuaCommand(argv, output),
  },
};

const USAGE = `Usage: dmz-agent <command> [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, command]) => `  ${name.padEnd(10)}${command.summary}`)
  .join('\n')}

Run \`dmz-agent <command> --help\` for a command's options; \`dmz-agent --version\` shows the version.
Exit status: 0 success, 1 error, 2 invalid command line.`;

const PROGRAM = 'dmz-agent';

/** Runs one command line and returns the exit status; bin/dmz-agent.js sets it on the process. */
export async function runAgentCli(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  output: Output = processOutput,
  control: AgentRunControl = {},
): Promise<ExitStatus> {
  const [name, ...rest] = argv;
  let usageHint = `see '${PROGRAM} --help'`;
  try {
    if (name === '-h' || name === '--help') {
      output.stdout(`${USAGE}\n`);
      return EXIT.ok;
    }
    if (asksForVersion(argv)) {
      output.stdout(versionLine(PROGRAM));
      return EXIT.ok;
    }
    if (name === undefined) throw usageError('a command is required');
    const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
    if (command === undefined) {
      throw usageError(
        name.startsWith('-')
          ? `unknown option ${quote(name)} before the command`
          : `unknown command ${quote(name)}`,
      );
    }
    usageHint = `see '${PROGRAM} ${name} --help'`;
    const status = await command.run(rest, env, output, control);
    await flushOutput(output);
    return status;
  } catch (error) {
    return reportError(PROGRAM, output, error, usageHint);
  }
}

/** Tests run the agent in-process and stop it with this, as SIGTERM would. */
export type { AgentRunControl as AgentCliControl } from './runtime/run-command.ts';

async function runRun(
  argv: string[],
  _env: NodeJS.ProcessEnv,
  output: Output,
  control: AgentRunControl,
): Promise<ExitStatus> {
  const { values } = parseCommandLine({
    args: argv,
    options: { config: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
    allowPositionals: false,
  });
  if (values.help === true) {
    output.stdout(`${RUN_USAGE}\n`);
    return EXIT.ok;
  }
  if (values.config === undefined) throw usageError('--config FILE is required');
  const { runAgent } = await import('./runtime/run-command.ts');
  return runAgent(values.config, output, control);
}

async function runStatus(argv: string[], _env: NodeJS.ProcessEnv, output: Output): Promise<ExitStatus> {
  const { values } = parseCommandLine({
    args: argv,
    options: { config: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
    allowPositionals: false,
  });
  if (values.help === true) {
    output.stdout(`${STATUS_USAGE}\n`);
    return EXIT.ok;
  }
  if (values.config === undefined) throw usageError('--config FILE is required');
  const { showStatus } = await import('./runtime/status-command.ts');
  return showStatus(values.config, values.json === true, output);
}

async function runEnroll(argv: string[], _env: NodeJS.ProcessEnv, output: Output): Promise<ExitStatus> {
  const { values } = parseCommandLine({
    args: argv,
    options: {
      token: { type: 'string' },
      'token-file': { type: 'string' },
      dir: { type: 'string' },
      force: { type: 'boolean' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help === true) {
    output.stdout(`${ENROLL_USAGE}\n`);
    return EXIT.ok;
  }
  const { dir } = values;
  if (dir === undefined) throw usageError('--dir is required');
  if (dir === '') throw invalidArgument('--dir must name a directory');
  const tokenSource = tokenSourceOf(values.token, values['token-file']);
  const token = tokenSource.kind === 'value' ? tokenSource.value : await readTokenFrom(tokenSource.path);
  if (token === '')
    throw invalidArgument(
      `no token in ${tokenSource.kind === 'value' ? '--token' : describeSource(tokenSource.path)}`,
    );
  // Loaded only now: --help and a bad command line need none of the crypto.
  const { enrollAgent } = await import('./enroll.ts');
  const outcome = await enrollAgent({ token, dir, force: values.force === true });
  const { identity } = outcome;
  if (values.json === true) {
    output.stdout(`${JSON.stringify({ ...identity, dir: outcome.dir, url: outcome.url })}\n`);
  } else {
    output.stdout(
      `enrolled ${identity.spiffeId}\n` +
        `  credentials in ${outcome.dir}\n` +
        `  certificate serial ${identity.serial}, valid until ${identity.notAfter}\n`,
    );
  }
  return EXIT.ok;
}

type TokenSource = { kind: 'value'; value: string } | { kind: 'file'; path: string };

function tokenSourceOf(token: string | undefined, tokenFile: string | undefined): TokenSource {
  if (token !== undefined && tokenFile !== undefined) {
    throw usageError('give --token or --token-file, not both');
  }
  if (tokenFile !== undefined) return { kind: 'file', path: tokenFile };
  if (token === STDIN) return { kind: 'file', path: STDIN };
  if (token !== undefined) return { kind: 'value', value: token.trim() };
  throw usageError('a token is required (--token, --token-file or --token -)');
}

function describeSource(path: string): string {
  return path === STDIN ? 'standard input' : quote(path);
}

/** Reads at most MAX_TOKEN_INPUT_BYTES + 1 bytes from the file or standard input. */
async function readTokenFrom(path: string): Promise<string> {
  const source: Readable =
    path === STDIN ? process.stdin : createReadStream(path, { end: MAX_TOKEN_INPUT_BYTES });
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      size += chunk.byteLength;
      if (size > MAX_TOKEN_INPUT_BYTES) break;
    }
  } catch (cause) {
    throw fileError('read the token from', path, cause);
  }
  if (size > MAX_TOKEN_INPUT_BYTES) {
    throw new DmzError('PKI_ERR_TOKEN_INVALID', `${describeSource(path)} holds far more than a token`, {
      hint: 'give the file dmz-pki token create wrote, or the token itself',
    });
  }
  return Buffer.concat(chunks).toString('utf8').trim();
}

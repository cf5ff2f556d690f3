/**
 * `dmz-agent <command>`: the agent program. Commands are dispatched from one table, so adding
 * one (`run`) is one entry. Exit codes: 0 done, 1 failed, 2 usage error.
 */
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { DmzError } from '../relay/protocol/errors.ts';
import { enrollAgent } from './enroll.ts';

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
  readonly run: (argv: string[]) => Promise<number>;
}

const COMMANDS: Readonly<Record<string, Command>> = {
  enroll: { summary: 'enroll this host with a relay, using a one-time token', run: runEnroll },
};

const USAGE = `Usage: dmz-agent <command> [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, command]) => `  ${name.padEnd(10)}${command.summary}`)
  .join('\n')}

Run \`dmz-agent <command> --help\` for a command's options.`;

class UsageError extends Error {
  readonly usage: string;

  constructor(message: string, usage: string) {
    super(message);
    this.name = 'UsageError';
    this.usage = usage;
  }
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '-h' || name === '--help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (name === undefined) throw new UsageError('a command is required', USAGE);
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (command === undefined) throw new UsageError(`unknown command "${name}"`, USAGE);
  return command.run(rest);
}

async function runEnroll(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
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
    }));
  } catch (error) {
    throw new UsageError((error as Error).message, ENROLL_USAGE);
  }
  if (values.help === true) {
    process.stdout.write(`${ENROLL_USAGE}\n`);
    return 0;
  }
  const { dir } = values;
  if (dir === undefined) throw new UsageError('--dir is required', ENROLL_USAGE);
  const tokenSource = tokenSourceOf(values.token, values['token-file']);
  const token = tokenSource.kind === 'value' ? tokenSource.value : await readTokenFrom(tokenSource.path);
  const outcome = await enrollAgent({ token, dir, force: values.force === true });
  const { identity } = outcome;
  if (values.json === true) {
    process.stdout.write(`${JSON.stringify({ ...identity, dir: outcome.dir, url: outcome.url })}\n`);
  } else {
    process.stdout.write(
      `enrolled ${identity.spiffeId}\n` +
        `  credentials in ${outcome.dir}\n` +
        `  certificate serial ${identity.serial}, valid until ${identity.notAfter}\n`,
    );
  }
  return 0;
}

type TokenSource = { kind: 'value'; value: string } | { kind: 'file'; path: string };

function tokenSourceOf(token: string | undefined, tokenFile: string | undefined): TokenSource {
  if (token !== undefined && tokenFile !== undefined) {
    throw new UsageError('give --token or --token-file, not both', ENROLL_USAGE);
  }
  if (tokenFile !== undefined) return { kind: 'file', path: tokenFile };
  if (token === STDIN) return { kind: 'file', path: STDIN };
  if (token !== undefined) return { kind: 'value', value: token.trim() };
  throw new UsageError('a token is required (--token, --token-file or --token -)', ENROLL_USAGE);
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
    throw new DmzError('PKI_ERR_TOKEN_INVALID', `could not read the token from ${path}`, { cause });
  }
  if (size > MAX_TOKEN_INPUT_BYTES) {
    throw new DmzError('PKI_ERR_TOKEN_INVALID', `${path} holds far more than a token`);
  }
  return Buffer.concat(chunks).toString('utf8').trim();
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof UsageError) {
      process.stderr.write(`dmz-agent: ${error.message}\n\n${error.usage}\n`);
      process.exit(2);
    }
    const message = error instanceof DmzError ? `${error.message} (${error.code})` : String(error);
    process.stderr.write(`dmz-agent: ${message}\n`);
    process.exit(1);
  },
);

/**
 * `dmz-agent api user add NAME --role read|write --password-hash-file FILE | --token-file FILE`:
 * makes one API user's credential, a file open to its owner alone, and prints the it.api.users
 * entry that names it. The configuration stays the operator's to edit (a command that rewrote
 * agent.yaml would lose its comments and layout); the agent reads its users at start and on SIGHUP.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import {
  EXIT,
  fileError,
  invalidArgument,
  parseCommandLine,
  quote,
  usageError,
  type ExitStatus,
  type Output,
} from '../../../relay/protocol/command-line.ts';
import {
  createPrivateDirectory,
  replaceFileDurably,
  syncDirectory,
  writeNewFileFlushed,
} from '../../../relay/protocol/durable-files.ts';
import { API_ROLES, API_USER_NAME, type ApiRole } from './api-config.ts';
import { MIN_PASSWORD_LENGTH } from './auth.ts';
import { hashPassword } from './password-hash.ts';

const STDIN = '-';
/** 256 bits, as hex: far past guessing, and past MIN_TOKEN_LENGTH. */
const TOKEN_BYTES = 32;

export const API_USAGE = `Usage: dmz-agent api user add NAME --role read|write [--password-hash-file FILE] [--token-file FILE] [options]

Makes a credential for one user of the IT agent's API and prints the it.api.users entry to add
to agent.yaml (then reload the agent: systemctl reload, or SIGHUP). Give one or both of:
  --password-hash-file FILE  write the scrypt hash of the user's password to FILE (0600); the
                             password is read from --password-file, or asked for on a terminal
  --token-file FILE          write a new random bearer token to FILE (0600), for a program

Options:
  --role read|write     read: values, history, stream, status; write: also writes
  --password-file FILE  read the password from FILE's first line (- for standard input)
  --force               replace FILE if it exists (a new password or token for the user)
  --json                print the it.api.users entry as JSON
  -h, --help            show this help

Run it as the agent's user: the agent refuses a credential file it does not own.`;

export async function runApiCommand(argv: readonly string[], output: Output): Promise<ExitStatus> {
  const [noun, action, ...rest] = argv;
  if (noun === '-h' || noun === '--help' || action === '-h' || action === '--help') {
    output.stdout(`${API_USAGE}\n`);
    return EXIT.ok;
  }
  if (noun !== 'user' || action !== 'add')
    throw usageError(
      noun === undefined
        ? 'an action is required: api user add'
        : `unknown api action ${quote(argv.join(' '))}`,
    );
  const { values, positionals } = parseCommandLine({
    args: rest,
    options: {
      role: { type: 'string' },
      'password-hash-file': { type: 'string' },
      'token-file': { type: 'string' },
      'password-file': { type: 'string' },
      force: { type: 'boolean' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: true,
  });
  if (values.help === true) {
    output.stdout(`${API_USAGE}\n`);
    return EXIT.ok;
  }
  const [name, ...extra] = positionals;
  if (name === undefined) throw usageError('the user NAME is required');
  if (extra.length > 0) throw usageError(`unexpected argument ${quote(extra[0] as string)}`);
  if (!API_USER_NAME.test(name))
    throw invalidArgument(
      `user name ${quote(name)} must be 1 to 64 of A-Z a-z 0-9 . _ @ -, starting with a letter or digit`,
    );
  if (values.role === undefined) throw usageError('--role read|write is required');
  const role = values.role as ApiRole;
  if (!API_ROLES.includes(role)) throw invalidArgument(`--role ${quote(values.role)} must be read or write`);
  const hashFile = values['password-hash-file'];
  const tokenFile = values['token-file'];
  if (hashFile === undefined && tokenFile === undefined)
    throw usageError('give --password-hash-file FILE, --token-file FILE or both');
  if (values['password-file'] !== undefined && hashFile === undefined)
    throw usageError('--password-file is for --password-hash-file');
  const force = values.force === true;

  const entry: Record<string, string> = { name, role };
  if (hashFile !== undefined) {
    const password = await readPassword(values['password-file']);
    if (password.length < MIN_PASSWORD_LENGTH)
      throw invalidArgument(`the password has fewer than ${MIN_PASSWORD_LENGTH} characters`);
    entry.passwordHashFile = resolve(hashFile);
    await writeSecretFile(entry.passwordHashFile, `${await hashPassword(password)}\n`, force);
  }
  if (tokenFile !== undefined) {
    entry.tokenFile = resolve(tokenFile);
    await writeSecretFile(entry.tokenFile, `${randomBytes(TOKEN_BYTES).toString('hex')}\n`, force);
  }
  if (values.json === true) {
    output.stdout(`${JSON.stringify(entry)}\n`);
    return EXIT.ok;
  }
  const made = [
    ...(entry.passwordHashFile === undefined ? [] : [`the password hash in ${entry.passwordHashFile}`]),
    ...(entry.tokenFile === undefined
      ? []
      : [`a bearer token in ${entry.tokenFile} (give it to the program)`]),
  ];
  output.stdout(
    `made ${made.join(' and ')}\n` +
      `add to it.api.users in agent.yaml, then reload the agent (systemctl reload, or SIGHUP):\n` +
      Object.entries(entry)
        .map(([key, value], index) => `  ${index === 0 ? '-' : ' '} ${key}: ${value}\n`)
        .join(''),
  );
  return EXIT.ok;
}

/** The password from a file's first line, standard input's, or typed on a terminal without echo. */
async function readPassword(file: string | undefined): Promise<string> {
  if (file === undefined && process.stdin.isTTY) {
    const first = await askHidden('password for the API user: ');
    if ((await askHidden('the same again: ')) !== first) throw invalidArgument('the two passwords differ');
    return first;
  }
  const path = file ?? STDIN;
  try {
    const text = path === STDIN ? await readStandardInput() : await readFile(path, 'utf8');
    return text.split(/\r?\n/, 1)[0] ?? '';
  } catch (cause) {
    throw fileError('read the password from', path === STDIN ? 'standard input' : path, cause);
  }
}

async function readStandardInput(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

function askHidden(prompt: string): Promise<string> {
  process.stderr.write(prompt);
  // readline echoes what is typed to its output: a sink, so the password never shows.
  const sink = new Writable({ write: (_chunk, _encoding, done) => done() });
  const reader = createInterface({ input: process.stdin, output: sink, terminal: true });
  return new Promise((resolveLine) =>
    reader.question('', (line) => {
      reader.close();
      process.stderr.write('\n');
      resolveLine(line);
    }),
  );
}

async function writeSecretFile(path: string, contents: string, force: boolean): Promise<void> {
  try {
    await createPrivateDirectory(dirname(path));
    if (force) await replaceFileDurably(path, contents);
    else {
      await writeNewFileFlushed(path, contents);
      await syncDirectory(dirname(path));
    }
  } catch (cause) {
    throw fileError('write', path, cause, { EEXIST: 'give --force to replace it, or choose another path' });
  }
}

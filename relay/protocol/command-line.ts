/**
 * What the product's command-line tools (dmz-relay, dmz-pki, dmz-agent, the demo) share: where
 * they write, their exit statuses, strict option parsing, and the one way every failure is told.
 *
 * A failure is one line on stderr, `<command>: <what is wrong> (<CODE>); <what to do>`, naming the
 * file, directory, key path or port concerned, never a stack trace. A configuration with several
 * problems lists them on the lines after. Exit status 2 is a command line that cannot be run as
 * written (unknown option, missing or malformed value); 1 is everything else.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError, DmzError, type ConfigIssue, type ErrorCode } from './errors.ts';

export interface Output {
  stdout(data: string | Uint8Array): void;
  stderr(text: string): void;
  /**
   * Waits until what was given to stdout so far is written; rejects with the first write that
   * failed (a full disk behind `> file`, a closed pipe). Output captured in memory has none.
   */
  flush?(): Promise<void>;
}

export const EXIT = { ok: 0, error: 1, usage: 2 } as const;
export type ExitStatus = (typeof EXIT)[keyof typeof EXIT];

/** Codes that mean "the command line is wrong": exit status 2. */
const USAGE_CODES: ReadonlySet<ErrorCode> = new Set(['CLI_ERR_USAGE', 'CLI_ERR_INVALID_ARGUMENT']);

/** What to do, for codes whose remedy is the same wherever they are raised. */
const DEFAULT_HINTS: Partial<Record<ErrorCode, string>> = {
  PKI_ERR_TOKEN_EXPIRED: "ask the relay's operator for a new token (dmz-pki token create)",
  PKI_ERR_TOKEN_USED: "a token enrolls once: ask the relay's operator for a new one (dmz-pki token create)",
  PKI_ERR_TOKEN_REVOKED: "ask the relay's operator for a new token (dmz-pki token create)",
  PKI_ERR_TOKEN_UNKNOWN:
    "the token was made by another relay's CA, or its state was re-created: ask for a new token",
  PKI_ERR_TOKEN_INVALID: 'pass the whole token exactly as dmz-pki token create printed it',
  PKI_ERR_RATE_LIMITED: 'wait a minute and try again',
  PKI_ERR_ENROLLMENT_FAILED:
    "check that the relay runs and that this host reaches the token's enrollment URL (firewall, DNS)",
  PKI_ERR_CA_MISMATCH:
    'the endpoint is not the relay the token was made for (or an impostor): check the token URL and the network path',
  CLI_ERR_UNEXPECTED: 'this is a bug, or a fault of the machine (a full disk, a broken file): see the error',
};

/**
 * Standard output and error of this process. A write error must not crash the process (an
 * unhandled 'error' event): it is recorded, and `flush` reports it, so a command whose output
 * is lost (`dmz-pki token create > /dev/full`) can say so instead of exiting 0.
 */
export const processOutput: Output = {
  stdout: (data) => void guarded(process.stdout).write(data),
  stderr: (text) => void guarded(process.stderr).write(text),
  flush: () =>
    new Promise((resolve, reject) => {
      const stream = guarded(process.stdout);
      const failed = writeFailures.get(stream);
      if (failed !== undefined) {
        reject(failed);
        return;
      }
      stream.write('', (error) => {
        const failure = writeFailures.get(stream) ?? error ?? undefined;
        if (failure === undefined) resolve();
        else reject(failure);
      });
    }),
};

/** The first write error of each stream of this process. */
const writeFailures = new WeakMap<NodeJS.WriteStream, Error>();
const guardedStreams = new WeakSet<NodeJS.WriteStream>();
function guarded(stream: NodeJS.WriteStream): NodeJS.WriteStream {
  if (!guardedStreams.has(stream)) {
    guardedStreams.add(stream);
    stream.on('error', (error: Error) => {
      if (!writeFailures.has(stream)) writeFailures.set(stream, error);
    });
  }
  return stream;
}

/**
 * Waits for stdout and turns a failed write into the one-line error. A reader that went away
 * (EPIPE: `| head`) wanted no more; that is no failure, unless `evenClosedPipe`.
 */
export async function flushOutput(output: Output, evenClosedPipe = false): Promise<void> {
  try {
    await output.flush?.();
  } catch (cause) {
    if (!evenClosedPipe && (cause as NodeJS.ErrnoException).code === 'EPIPE') return;
    throw outputError(cause);
  }
}

/** `cannot write to standard output: no space left on the device (CLI_ERR_FILE); ...`. */
export function outputError(cause: unknown, hint?: string): DmzError {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  const reason = (code === undefined ? undefined : FILE_ERRORS[code]) ?? code ?? String(cause);
  return new DmzError('CLI_ERR_FILE', `cannot write to standard output: ${reason}`, {
    cause,
    hint: hint ?? 'check where standard output goes (a full disk, a closed pipe) and run the command again',
  });
}

/**
 * `dmz-pki 0.1.0`: what `--version` prints, from package.json. The sources sit two directories
 * below it (relay/protocol/), the build three (dist/relay/protocol/).
 */
export function versionLine(program: string): string {
  for (const up of ['../../package.json', '../../../package.json']) {
    try {
      const manifest = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as {
        name?: unknown;
        version?: unknown;
      };
      if (manifest.name === 'dmz-relay' && typeof manifest.version === 'string') {
        return `${program} ${manifest.version}\n`;
      }
    } catch {
      // Not this level: try the next.
    }
  }
  return `${program} (version unknown)\n`;
}

/** Whether the command line asks only for the version: `--version` alone. */
export function asksForVersion(argv: readonly string[]): boolean {
  return argv.length === 1 && argv[0] === '--version';
}

/** Exit statuses of a process stopped by SIGINT and SIGTERM, as a shell reports them (128 + n). */
const INTERRUPTED_EXIT = { SIGINT: 130, SIGTERM: 143 } as const;

/**
 * Until the returned function is called, Ctrl-C (SIGINT) or SIGTERM removes what a command has
 * created so far (`paths()`, asked at that moment) and exits as the signal would: an `init` or an
 * `enroll` cut short leaves nothing half made behind, just as one that fails.
 */
export function removeOnInterrupt(paths: () => readonly string[]): () => void {
  const handlers = (Object.keys(INTERRUPTED_EXIT) as (keyof typeof INTERRUPTED_EXIT)[]).map((signal) => {
    const handler = () => {
      for (const path of paths()) rmSync(path, { recursive: true, force: true });
      process.exit(INTERRUPTED_EXIT[signal]);
    };
    process.once(signal, handler);
    return [signal, handler] as const;
  });
  return () => {
    for (const [signal, handler] of handlers) process.off(signal, handler);
  };
}

/**
 * The directory `mkdir -p path` would create first (the highest one missing), or undefined when
 * `path` exists: what a command that is about to make `path` must remove if it is interrupted.
 */
export function firstMissingDirectory(path: string): string | undefined {
  let missing: string | undefined;
  for (let current = resolve(path); !existsSync(current); current = dirname(current)) {
    missing = current;
    if (dirname(current) === current) break;
  }
  return missing;
}

/** The command line is wrong (syntax): exit status 2. */
export function usageError(message: string, hint?: string): DmzError {
  return new DmzError('CLI_ERR_USAGE', message, hint === undefined ? {} : { hint });
}

/** A value was given in a form that cannot be used (`--role plc`): exit status 2. */
export function invalidArgument(message: string, hint?: string): DmzError {
  return new DmzError('CLI_ERR_INVALID_ARGUMENT', message, hint === undefined ? {} : { hint });
}

/** What an errno means to an operator, for the failures a file operation can meet. */
const FILE_ERRORS: Readonly<Record<string, string>> = {
  ENOENT: 'it or a directory above it does not exist',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'it is a directory',
  ENOTDIR: 'a part of the path is not a directory',
  EEXIST: 'it already exists',
  ENOSPC: 'no space left on the device',
  EROFS: 'the file system is read-only',
  ELOOP: 'too many symbolic links',
  ENAMETOOLONG: 'the name is too long',
  EPIPE: 'the reader closed the pipe',
  EIO: 'an input/output error',
};

/** What to do about each errno, when the caller has nothing more precise to say. */
const FILE_REMEDIES: Readonly<Record<string, string>> = {
  ENOENT: 'check the path',
  EACCES: 'run as the user who owns it, or fix its permissions',
  EPERM: 'run as the user who owns it, or fix its permissions',
  EISDIR: 'give the path of a file, not of a directory',
  ENOTDIR: 'check the path: a part of it is a file',
  EEXIST: 'remove it first, or choose another path',
  ENOSPC: 'free space on the device, or choose a path on another one',
  EROFS: 'choose a path on a writable file system',
  ELOOP: 'check the symbolic links in the path',
  ENAMETOOLONG: 'choose a shorter path',
};

/**
 * `cannot write "/x/crl.pem": it or a directory above it does not exist (CLI_ERR_FILE); ...`.
 * `hint` is the remedy: one for every cause, or one per errno (`{ ENOENT: 'create ...' }`), the
 * others taking the remedy of FILE_REMEDIES; a remedy must fit the cause it follows.
 */
export function fileError(
  action: string,
  path: string,
  cause: unknown,
  hint?: string | Readonly<Record<string, string>>,
): DmzError {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  const reason = (code === undefined ? undefined : FILE_ERRORS[code]) ?? code ?? String(cause);
  const remedy =
    typeof hint === 'string' ? hint : code === undefined ? undefined : (hint?.[code] ?? FILE_REMEDIES[code]);
  return new DmzError('CLI_ERR_FILE', `cannot ${action} ${quote(path)}: ${reason}`, {
    cause,
    ...(remedy === undefined ? {} : { hint: remedy }),
  });
}

/** User input echoed in a message: quoted and escaped, so control characters cannot reach the terminal. */
export function quote(value: string): string {
  return JSON.stringify(value);
}

/**
 * node:util's parseArgs, strict, with its errors turned into usage errors that read the same in
 * every tool: `unknown option --stat`, `--state needs a value`.
 */
export function parseCommandLine<const T extends ParseArgsConfig>(
  config: T,
): ReturnType<typeof parseArgs<T>> {
  let parsed;
  try {
    parsed = parseArgs({ ...config, tokens: true });
  } catch (error) {
    throw usageError(describeParseError(error));
  }
  // parseArgs keeps the last of a repeated option: `--role ot --role it` would run as `it`
  // without a word. An option given twice is a command line that says two things.
  const seen = new Set<string>();
  for (const token of parsed.tokens ?? []) {
    if (token.kind !== 'option' || config.options?.[token.name]?.multiple === true) continue;
    if (seen.has(token.name)) throw usageError(`--${token.name} given twice`);
    seen.add(token.name);
  }
  if (config.tokens !== true) delete parsed.tokens;
  return parsed as ReturnType<typeof parseArgs<T>>;
}

export function describeParseError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: string }).code;
  const option = /'(-[^' ]+)/.exec(message)?.[1];
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && option !== undefined) return `unknown option ${option}`;
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && option !== undefined) {
    return message.includes('does not take') ? `${option} takes no value` : `${option} needs a value`;
  }
  if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
    const argument = /'([^']*)'/.exec(message)?.[1];
    return argument === undefined ? 'unexpected argument' : `unexpected argument ${quote(argument)}`;
  }
  // Other messages are plain up to their advice on `--`.
  return message.split('. ')[0] ?? message;
}

/**
 * The one line (or, for a configuration with several problems, the lines) a failure prints.
 * `usageHint` (`see 'dmz-pki crl --help'`) is the remedy of a command-line error that has none.
 */
export function formatError(program: string, error: unknown, usageHint?: string): string {
  if (error instanceof ConfigError) return formatConfigError(program, error);
  if (error instanceof DmzError) {
    const hint = error.hint ?? (USAGE_CODES.has(error.code) ? usageHint : DEFAULT_HINTS[error.code]);
    return `${program}: ${oneLine(error.message)} (${error.code})${hint === undefined ? '' : `; ${hint}`}\n`;
  }
  // Anything else is unexpected (a full disk, a corrupt database): its message, not its stack.
  const message = error instanceof Error ? error.message : String(error);
  const unexpected = new DmzError('CLI_ERR_UNEXPECTED', `unexpected error: ${message}`);
  return formatError(program, unexpected);
}

/**
 * A configuration's problems, each with its key path. One problem is one line; several are a
 * first line and then one a line. A YAML syntax error's code frame follows its line, indented.
 */
function formatConfigError(program: string, error: ConfigError): string {
  const describe = (issue: ConfigIssue) => {
    const [first = '', ...frame] = issue.message.split('\n');
    const body = frame.map((line) => line.trimEnd());
    while (body.at(-1) === '') body.pop();
    // "...at line 5, column 1:" introduces the frame, which now follows the code instead.
    const head = body.length > 0 ? first.replace(/:$/, '') : first;
    return {
      head: issue.path === '' ? head : `${issue.path}: ${head}`,
      body: body.map((line) => (line === '' ? '' : `    ${line}`)),
    };
  };
  const hint = error.hint === undefined ? '' : `; ${error.hint}`;
  const [only] = error.issues;
  if (error.issues.length === 1 && only !== undefined) {
    const { head, body } = describe(only);
    return [`${program}: ${error.source}: ${head} (${error.code})${hint}`, ...body, ''].join('\n');
  }
  const lines = error.issues.flatMap((issue) => {
    const { head, body } = describe(issue);
    return [`  ${head}`, ...body];
  });
  return [`${program}: ${error.source} is invalid (${error.code}); fix each key below:`, ...lines, ''].join(
    '\n',
  );
}

/** Prints the failure and returns its exit status. */
export function reportError(program: string, output: Output, error: unknown, usageHint?: string): ExitStatus {
  output.stderr(formatError(program, error, usageHint));
  return exitStatusOf(error);
}

export function exitStatusOf(error: unknown): ExitStatus {
  return error instanceof DmzError && USAGE_CODES.has(error.code) ? EXIT.usage : EXIT.error;
}

/** A message is one line: a newline from a library or a file name must not forge a second one. */
function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ');
}

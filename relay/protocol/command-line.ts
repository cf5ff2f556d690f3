/**
 * What the product's command-line tools (dmz-relay, dmz-pki, dmz-agent, the demo) share: where
 * they write, their exit statuses, strict option parsing, and the one way every failure is told.
 *
 * A failure is one line on stderr, `<command>: <what is wrong> (<CODE>); <what to do>`, naming the
 * file, directory, key path or port concerned, never a stack trace. A configuration with several
 * problems lists them on the lines after. Exit status 2 is a command line that cannot be run as
 * written (unknown option, missing or malformed value); 1 is everything else.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError, DmzError, type ConfigIssue, type ErrorCode } from './errors.ts';

export interface Output {
  stdout(data: string | Uint8Array): void;
  stderr(text: string): void;
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
 * Standard output and error of this process. A reader that went away (`| head`, a closed pipe)
 * is no reason to crash: EPIPE and the like are swallowed once, here, for good.
 */
export const processOutput: Output = {
  stdout: (data) => void guarded(process.stdout).write(data),
  stderr: (text) => void guarded(process.stderr).write(text),
};

const guardedStreams = new WeakSet<NodeJS.WriteStream>();
function guarded(stream: NodeJS.WriteStream): NodeJS.WriteStream {
  if (!guardedStreams.has(stream)) {
    guardedStreams.add(stream);
    stream.on('error', () => undefined);
  }
  return stream;
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
};

/** `cannot write "/x/crl.pem": it or a directory above it does not exist (CLI_ERR_FILE)`. */
export function fileError(action: string, path: string, cause: unknown, hint?: string): DmzError {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  const reason = (code === undefined ? undefined : FILE_ERRORS[code]) ?? code ?? String(cause);
  return new DmzError('CLI_ERR_FILE', `cannot ${action} ${quote(path)}: ${reason}`, {
    cause,
    ...(hint === undefined ? {} : { hint }),
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
  try {
    return parseArgs(config);
  } catch (error) {
    throw usageError(describeParseError(error));
  }
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

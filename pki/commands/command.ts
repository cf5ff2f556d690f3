/**
 * What a `dmz-pki` command is: the words that name it, its options (node:util parseArgs specs),
 * its operands, its help, and what it does. cli.ts finds the command and parses the command line
 * strictly against these specs; a command only ever sees values that passed that parse.
 */
import type { parseArgs, ParseArgsConfig } from 'node:util';
import { invalidArgument, quote, usageError } from '../../relay/protocol/command-line.ts';
import { checkAuditLogWritable } from '../audit-log.ts';
import { CommandAudit } from '../audit-trail.ts';
import type { PkiState } from '../state.ts';
import type { Output } from './output.ts';

export type OptionSpecs = NonNullable<ParseArgsConfig['options']>;

/** Accepted by every command, before or after the command's words. */
export const GLOBAL_OPTIONS = {
  state: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies OptionSpecs;

export const STATE_DIR_ENV = 'DMZ_STATE_DIR';

export const GLOBAL_OPTIONS_HELP = `Global options:
  --state DIR          the CA's state directory (default: $${STATE_DIR_ENV})
  --json               print data as JSON
  -h, --help           show this help
  --version            show the version`;

/** The parsed values of the global options and the command's own, typed from the specs. */
export type OptionValues<O extends OptionSpecs> = ReturnType<
  typeof parseArgs<{
    args: string[];
    options: typeof GLOBAL_OPTIONS & O;
    strict: true;
    allowPositionals: true;
  }>
>['values'];

export interface Invocation<O extends OptionSpecs> {
  readonly values: OptionValues<O>;
  /** The positional arguments after the command's words, as many as `operands` names. */
  readonly operands: readonly string[];
  readonly stateDir: string;
  readonly env: NodeJS.ProcessEnv;
  readonly output: Output;
}

export interface Command<O extends OptionSpecs = OptionSpecs> {
  /** `['token', 'create']`. */
  readonly words: readonly string[];
  /** One line for the command list. */
  readonly summary: string;
  /** Synopsis, description and the command's own options; the global options are appended. */
  readonly usage: string;
  readonly options: O;
  /** Names of the required positional arguments, in order (`['JTI']`). */
  readonly operands: readonly string[];
  run(invocation: Invocation<O>): Promise<void>;
}

/** Types `run`'s values from the command's own option specs. */
export function defineCommand<const O extends OptionSpecs>(command: Command<O>): Command<O> {
  return command;
}

export { invalidArgument, quote, usageError };

export function requireOption<T>(value: T | undefined, option: string): T {
  if (value === undefined) throw usageError(`${option} is required`);
  return value;
}

/** Opens the state for one command and always closes the store, whatever the command throws. */
export async function withState<T>(stateDir: string, use: (state: PkiState) => T | Promise<T>): Promise<T> {
  // Loaded here, not at the top: `--help` and a bad command line need no database or CA code.
  const { openState } = await import('../state.ts');
  const state = await openState(stateDir);
  try {
    return await use(state);
  } finally {
    state.close();
  }
}

/**
 * withState for a command that changes state (pki/audit-trail.ts): the audit log is checked
 * writable before `use` runs, and a refusal `use` throws is recorded before it reaches the operator.
 */
export async function withAuditedState<T>(
  stateDir: string,
  command: string,
  use: (state: PkiState, audit: CommandAudit) => T | Promise<T>,
): Promise<T> {
  return withState(stateDir, async (state) => {
    checkAuditLogWritable(stateDir);
    const audit = new CommandAudit(state, command);
    try {
      return await use(state, audit);
    } catch (error) {
      audit.refuse(error);
      throw error;
    }
  });
}

/**
 * A command refused because a CA is already in the directory (init, restore): that CA's audit
 * log keeps the attempt. Best effort: the refusal itself is what the operator must see.
 */
export async function recordRefusalOverState(
  stateDir: string,
  command: string,
  error: unknown,
): Promise<void> {
  await withState(stateDir, (state) => new CommandAudit(state, command).refuse(error)).catch(() => undefined);
}

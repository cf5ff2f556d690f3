/**
 * `dmz-pki`: the admin CLI of the relay's certificate authority, run on the relay host only.
 * Finds the command, parses its command line strictly (unknown options are errors), resolves the
 * state directory and runs it. Exit status: 0 success, 1 error, 2 invalid command line.
 */
import { parseArgs } from 'node:util';
import { agentsCommand } from './commands/agents.ts';
import { auditCommand } from './commands/audit.ts';
import {
  asksForVersion,
  flushOutput,
  parseCommandLine,
  reportError,
  versionLine,
} from '../relay/protocol/command-line.ts';
import {
  GLOBAL_OPTIONS,
  GLOBAL_OPTIONS_HELP,
  quote,
  STATE_DIR_ENV,
  usageError,
  type Command,
  type OptionSpecs,
} from './commands/command.ts';
import { crlCommand } from './commands/crl.ts';
import { initCommand } from './commands/init.ts';
import { EXIT, processOutput, PROGRAM, type ExitStatus, type Output } from './commands/output.ts';
import { PASSPHRASE_ENV } from './commands/passphrase.ts';
import { backupCommand } from './commands/backup.ts';
import { relayCertCommand } from './commands/relay-cert.ts';
import { restoreCommand } from './commands/restore.ts';
import { revokeCommand } from './commands/revoke.ts';
import { statusCommand } from './commands/status.ts';
import { tokenCreateCommand, tokenListCommand, tokenRevokeCommand } from './commands/token.ts';

const COMMANDS: readonly Command[] = [
  initCommand,
  tokenCreateCommand,
  tokenListCommand,
  tokenRevokeCommand,
  agentsCommand,
  revokeCommand,
  crlCommand,
  statusCommand,
  relayCertCommand,
  backupCommand,
  restoreCommand,
  auditCommand,
];

/**
 * Every option any command knows. Used only to tell option values from command words before the
 * command is known (`--state DIR token create`); each command is then parsed strictly on its own.
 */
const ALL_OPTIONS: OptionSpecs = mergeOptionSpecs([GLOBAL_OPTIONS, ...COMMANDS.map((c) => c.options)]);

/** Runs one command line and returns the exit status; bin/dmz-pki.js sets it on the process. */
export async function runPkiCli(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  output: Output = processOutput,
): Promise<ExitStatus> {
  let usageHint = `see '${PROGRAM} --help'`;
  try {
    if (asksForVersion(argv)) {
      output.stdout(versionLine(PROGRAM));
      return EXIT.ok;
    }
    const args = protectDashOperands(argv);
    const { positionals, values, tokens } = parseArgs({
      args,
      options: ALL_OPTIONS,
      strict: false,
      allowPositionals: true,
      tokens: true,
    });
    const help = values.help === true;
    const command = COMMANDS.find((c) => c.words.every((word, index) => positionals[index] === word));
    if (command !== undefined) usageHint = `see '${PROGRAM} ${command.words.join(' ')} --help'`;
    // Before the command is looked for: `--stat DIR agents` is a typo, not the command "DIR".
    if (!help) refuseUnknownOptions(tokens);
    if (command === undefined) return reportMissingCommand(positionals, values, help, output);
    if (help) {
      output.stdout(`${command.usage}\n\n${GLOBAL_OPTIONS_HELP}\n`);
      return EXIT.ok;
    }
    const parsed = parseStrictly(args, command);
    const operands = parsed.positionals.slice(command.words.length);
    const missing = command.operands[operands.length];
    if (missing !== undefined) throw usageError(`missing ${missing}`);
    const extra = operands[command.operands.length];
    if (extra !== undefined) throw usageError(`unexpected argument ${quote(extra)}`);
    const stateDir = parsed.values.state ?? env[STATE_DIR_ENV];
    if (stateDir === undefined || stateDir === '') {
      throw usageError(`--state DIR is required (or set ${STATE_DIR_ENV})`);
    }
    await command.run({ values: parsed.values, operands, stateDir, env, output });
    await flushOutput(output);
    return EXIT.ok;
  } catch (error) {
    return reportError(PROGRAM, output, error, usageHint);
  }
}

function parseStrictly(args: string[], command: Command) {
  return parseCommandLine({
    args,
    options: { ...GLOBAL_OPTIONS, ...command.options },
    strict: true,
    allowPositionals: true,
  });
}

type Token = NonNullable<ReturnType<typeof parseArgs>['tokens']>[number];

/** An option no command knows, or one that needs a value and has none, is wrong whatever the command. */
function refuseUnknownOptions(tokens: readonly Token[]): void {
  for (const token of tokens) {
    if (token.kind !== 'option') continue;
    const spec = ALL_OPTIONS[token.name];
    if (spec === undefined) throw usageError(`unknown option ${token.rawName}`);
    const value = token.value;
    if (
      spec.type === 'string' &&
      (value === undefined || (!(token.inlineValue ?? false) && value.startsWith('-')))
    ) {
      throw usageError(`${token.rawName} needs a value`);
    }
  }
}

/**
 * A token's jti is base64url, so 1 in 64 starts with '-' (`token revoke -Xq...`): parseArgs would
 * read it as a cluster of short options. The only short option is -h, so an argument of a single
 * dash and two or more characters can only be an operand: it is moved behind `--`. (An option
 * value that starts with '-' must be written `--reason=-x` anyway; parseArgs refuses the other form.)
 */
function protectDashOperands(argv: readonly string[]): string[] {
  const end = argv.indexOf('--');
  const head = end === -1 ? argv : argv.slice(0, end);
  const tail = end === -1 ? [] : argv.slice(end + 1);
  const isDashOperand = (arg: string) => /^-[^-]./.test(arg);
  const operands = head.filter(isDashOperand);
  if (operands.length === 0 && end === -1) return [...argv];
  return [...head.filter((arg) => !isDashOperand(arg)), '--', ...operands, ...tail];
}

/** No command matched: a bare `dmz-pki`, a group without its command (`token`), or an unknown word. */
function reportMissingCommand(
  positionals: readonly string[],
  values: Readonly<Record<string, unknown>>,
  help: boolean,
  output: Output,
): ExitStatus {
  const [first, second] = positionals;
  const group = COMMANDS.filter((c) => c.words.length > 1 && c.words[0] === first);
  const groupWord = group.length > 0 ? first : undefined;
  const bare = first === undefined || (groupWord !== undefined && second === undefined);
  if (help && bare) {
    output.stdout(`${commandListUsage(groupWord === undefined ? [] : [groupWord])}\n`);
    return EXIT.ok;
  }
  const state = values.state;
  // `dmz-pki --state agents`: the command word was taken as the directory.
  const swallowed =
    typeof state === 'string' && COMMANDS.some((c) => c.words[0] === state) ? state : undefined;
  const problem =
    first === undefined
      ? swallowed === undefined
        ? 'no command given'
        : `no command given: --state took ${quote(swallowed)} as its directory`
      : groupWord === undefined
        ? `unknown command ${quote(first)}`
        : second === undefined
          ? `${groupWord} needs a command: ${group.map((c) => c.words[1]).join(', ')}`
          : `unknown command ${quote(`${groupWord} ${second}`)}`;
  const hint =
    swallowed === undefined
      ? `see '${PROGRAM} ${groupWord === undefined ? '' : `${groupWord} `}--help' for the commands`
      : `write --state DIR ${swallowed}`;
  return reportError(PROGRAM, output, usageError(problem, hint));
}

function commandListUsage(prefix: readonly string[]): string {
  const listed = COMMANDS.filter((c) => prefix.every((word, index) => c.words[index] === word));
  const names = listed.map((c) => c.words.join(' '));
  const width = Math.max(...names.map((name) => name.length));
  const lines = listed.map((c, index) => `  ${(names[index] ?? '').padEnd(width)}  ${c.summary}`);
  return `Usage: dmz-pki --state DIR ${[...prefix, '<command>'].join(' ')} [options]

Administers the relay's certificate authority: enrollment tokens, agent certificates,
revocation and the CRL, the relay's server certificate, backup and restore. Run it on the
relay host, as the user that owns the state directory. Every command that changes the CA is
recorded in its audit log ('dmz-pki audit').

Commands:
${lines.join('\n')}

${GLOBAL_OPTIONS_HELP}

Keys encrypted at rest take their passphrase from --passphrase-file FILE or $${PASSPHRASE_ENV}.
'dmz-pki <command> --help' shows a command's options.
Exit status: 0 success, 1 error, 2 invalid command line.`;
}

/** Two commands may share an option name only with the same spec, or the first parse would lie. */
function mergeOptionSpecs(specs: readonly OptionSpecs[]): OptionSpecs {
  const merged: Record<string, OptionSpecs[string]> = {};
  for (const [name, spec] of specs.flatMap((s) => Object.entries(s))) {
    const seen = merged[name];
    if (seen !== undefined && (seen.type !== spec.type || seen.multiple !== spec.multiple)) {
      throw new Error(`dmz-pki: option --${name} is declared twice with different types`);
    }
    merged[name] = spec;
  }
  return merged;
}

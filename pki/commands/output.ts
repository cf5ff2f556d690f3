/**
 * How `dmz-pki` speaks: data on stdout (a table for people, JSON for scripts), everything else
 * on stderr as `dmz-pki: <plain message>`, and the exit status. Never a stack trace: the
 * operator sees the error catalog's message, with detail only where it names their own input.
 */
import { DmzError, type ErrorCode } from '../../relay/protocol/errors.ts';

export interface Output {
  stdout(data: string | Uint8Array): void;
  stderr(text: string): void;
}

export const PROGRAM = 'dmz-pki';

export const EXIT = { ok: 0, error: 1, usage: 2 } as const;
export type ExitStatus = (typeof EXIT)[keyof typeof EXIT];

/**
 * Codes whose cause names a local path or setting the operator must fix (their own state
 * directory), worth showing on a local admin tool; other causes stay internal.
 */
const SHOW_CAUSE: ReadonlySet<ErrorCode> = new Set(['PKI_ERR_STATE_PERMISSIONS']);
/** What to do next, where the catalog's message alone leaves the operator guessing. */
const HINTS: Partial<Record<ErrorCode, string>> = {
  PKI_ERR_NOT_INITIALIZED: "check --state, or create one with 'dmz-pki --state DIR init'",
};

export const processOutput: Output = {
  stdout: (data) => void process.stdout.write(data),
  stderr: (text) => void process.stderr.write(text),
};

export function formatJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

export function printJson(output: Output, value: unknown): void {
  output.stdout(formatJson(value));
}

/** Left-aligned columns separated by two spaces; the header row always prints, so scripts can rely on it. */
export function printTable(
  output: Output,
  headers: readonly string[],
  rows: readonly (readonly string[])[],
): void {
  const widths = headers.map((header, column) =>
    Math.max(header.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, column) => cell.padEnd(widths[column] ?? 0))
      .join('  ')
      .trimEnd();
  output.stdout([headers, ...rows].map((cells) => `${line(cells)}\n`).join(''));
}

/** Label/value lines, labels aligned, for one record (`status`). */
export function printFields(output: Output, fields: readonly (readonly [string, string])[]): void {
  const width = Math.max(...fields.map(([label]) => label.length));
  output.stdout(fields.map(([label, value]) => `${label.padEnd(width)}  ${value}\n`).join(''));
}

/** UTC to the second: certificate times are whole seconds (RFC 5280 section 4.1.2.5). */
export function formatTime(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function printNote(output: Output, message: string): void {
  output.stderr(`${PROGRAM}: ${message}\n`);
}

/** Prints an error the way the CLI reports every failure and returns the exit status. */
export function reportError(output: Output, error: unknown, usage?: string): ExitStatus {
  if (error instanceof DmzError && error.code === 'CLI_ERR_USAGE') {
    output.stderr(`${PROGRAM}: ${error.message}\n${usage === undefined ? '' : `\n${usage}\n`}`);
    return EXIT.usage;
  }
  printNote(output, describeError(error));
  return EXIT.error;
}

function describeError(error: unknown): string {
  if (error instanceof DmzError) {
    const cause = error.cause instanceof Error ? error.cause.message : undefined;
    if (SHOW_CAUSE.has(error.code) && cause !== undefined) return `${error.message}: ${cause}`;
    const hint = HINTS[error.code];
    return hint === undefined ? error.message : `${error.message}; ${hint}`;
  }
  // Anything else is unexpected (a full disk, a corrupt database): its message, not its stack.
  return error instanceof Error ? `unexpected error: ${error.message}` : `unexpected error: ${String(error)}`;
}

/**
 * How `dmz-pki` speaks: data on stdout (a table for people, JSON for scripts), everything else
 * on stderr as `dmz-pki: <plain message>`, and the exit status (relay/protocol/command-line.ts,
 * shared by every command of the product).
 */
import type { Output } from '../../relay/protocol/command-line.ts';

export { EXIT, processOutput, type ExitStatus, type Output } from '../../relay/protocol/command-line.ts';

export const PROGRAM = 'dmz-pki';

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

/** A warning or note that is not data: stderr, prefixed like every message of the tool. */
export function printNote(output: Output, message: string): void {
  output.stderr(`${PROGRAM}: ${message}\n`);
}

/** Plain-text tables for the benchmark reports. */

/** Rows as aligned columns: the first left-aligned, the others right-aligned. */
export function formatTable(rows: readonly string[][]): string[] {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]?.length ?? 0)));
  return rows.map((row) =>
    row
      .map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!)))
      .join('  ')
      .trimEnd(),
  );
}

export function formatCount(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

/** A ratio as `2.31x`, or `n/a`. */
export function formatRatio(value: number | undefined): string {
  return value === undefined || !Number.isFinite(value) ? 'n/a' : `${value.toFixed(2)}x`;
}

/**
 * Sizes as operators write them: a whole number of bytes, or with one binary unit (`512KiB`,
 * `64MiB`, `2GiB`). Decimal units (MB) are refused rather than guessed at: disk budgets are
 * binary on every tool an operator compares them with (df -h, du -h).
 */
const UNIT_BYTES = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, TiB: 1024 ** 4 } as const;

export function parseByteSize(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  const match = /^([0-9]{1,12})\s*(B|KiB|MiB|GiB|TiB)?$/.exec(value.trim());
  if (match === null) return undefined;
  const bytes = Number(match[1]) * UNIT_BYTES[(match[2] ?? 'B') as keyof typeof UNIT_BYTES];
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** The largest binary unit that writes `bytes` as a whole number. */
export function formatByteSize(bytes: number): string {
  for (const unit of ['TiB', 'GiB', 'MiB', 'KiB'] as const) {
    if (bytes >= UNIT_BYTES[unit] && bytes % UNIT_BYTES[unit] === 0)
      return `${bytes / UNIT_BYTES[unit]}${unit}`;
  }
  return `${bytes}B`;
}

/**
 * Durations as operators write them: `90s`, `30m`, `12h`, `7d` (and `100ms` where a caller asks for
 * it). One unit per value, whole numbers only, so that "1h30m" or "1.5d" is refused rather than
 * guessed at.
 */
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

export interface DurationOptions {
  /**
   * Also accept milliseconds (`100ms`): sampling intervals. Off by default, so lifetimes and TTLs,
   * which certificates and tokens hold in whole seconds, stay whole seconds.
   */
  readonly milliseconds?: boolean;
}

export function parseDuration(text: string, options: DurationOptions = {}): number | undefined {
  const match = /^([1-9][0-9]{0,6})(ms|[smhd])$/.exec(text.trim());
  if (match === null) return undefined;
  const unit = match[2] as keyof typeof UNIT_MS;
  if (unit === 'ms' && options.milliseconds !== true) return undefined;
  return Number(match[1]) * UNIT_MS[unit];
}

/** The largest unit that writes `ms` as a whole number; below a second or between, milliseconds. */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    if (ms >= UNIT_MS[unit] && ms % UNIT_MS[unit] === 0) return `${ms / UNIT_MS[unit]}${unit}`;
  }
  return `${Math.round(ms)}ms`;
}

/**
 * The file sink's options: checked once, every problem listed by key, unknown keys refused, then
 * frozen (STYLE.md point 6).
 */
import { ConfigError, type ConfigIssue } from '../../../relay/protocol/errors.ts';

export interface JsonLinesSinkOptions {
  /** The sink's directory; created 0700 if missing. */
  readonly dir: string;
  /** How logs and metrics name this sink (default "jsonl"). */
  readonly name?: string;
  /** The clock that picks the day's file and times checkpoints (default Date.now). */
  readonly now?: () => number;
}

export interface ResolvedJsonLinesSinkOptions {
  readonly dir: string;
  readonly name: string;
  readonly now: () => number;
}

const KNOWN_KEYS = new Set(['dir', 'name', 'now']);
/** A sink's name shows in logs and metric labels: a short word, like a topic segment. */
const SINK_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** Options checked once, every problem listed by key, unknown keys refused, then frozen. */
export function resolveJsonLinesSinkOptions(options: JsonLinesSinkOptions): ResolvedJsonLinesSinkOptions {
  const issues: ConfigIssue[] = [];
  const given = options as unknown as Record<string, unknown>;
  for (const key of Object.keys(given)) {
    if (!KNOWN_KEYS.has(key)) issues.push({ path: `/${key}`, message: 'unknown option' });
  }
  if (typeof given.dir !== 'string' || given.dir.length === 0) {
    issues.push({ path: '/dir', message: 'must be a directory path' });
  }
  const name = given.name ?? 'jsonl';
  if (typeof name !== 'string' || !SINK_NAME.test(name)) {
    issues.push({ path: '/name', message: 'must be 1 to 64 letters, digits, "_", "." or "-"' });
  }
  const now = given.now ?? Date.now;
  if (typeof now !== 'function') issues.push({ path: '/now', message: 'must be a function' });
  if (issues.length > 0) throw new ConfigError(issues, 'file sink options');
  return Object.freeze({ dir: options.dir, name: name as string, now: now as () => number });
}

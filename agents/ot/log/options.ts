/**
 * The stream log's options: checked once, every problem listed by key, unknown keys refused, then
 * frozen (STYLE.md point 6).
 */
import { ConfigError, type ConfigIssue } from '../../../relay/protocol/errors.ts';
import {
  DEFAULT_SEGMENT_BYTES,
  MAX_COMMIT_DELAY_MS,
  MAX_SEGMENT_BYTES,
  MIN_SEGMENT_BYTES,
  MIN_SEGMENTS_PER_BUDGET,
} from './limits.ts';

export interface StreamLogOptions {
  /** The log's directory; created 0700 if missing. */
  readonly dir: string;
  /** Disk budget: retention deletes the oldest segments while the log is larger. */
  readonly maxBytes: number;
  /** Records older than this are deleted, a whole segment at a time. */
  readonly maxAgeMs: number;
  /** Size at which a segment is sealed; default min(64 MiB, maxBytes / 4). */
  readonly segmentBytes?: number;
  /** How long an idle log waits for more appends before committing (default 0: next turn of the event loop). */
  readonly commitDelayMs?: number;
  /** The clock for append times and age retention (default Date.now). */
  readonly now?: () => number;
}

export interface ResolvedStreamLogOptions {
  readonly dir: string;
  readonly maxBytes: number;
  readonly maxAgeMs: number;
  readonly segmentBytes: number;
  readonly commitDelayMs: number;
  readonly now: () => number;
}

const KNOWN_KEYS = new Set(['dir', 'maxBytes', 'maxAgeMs', 'segmentBytes', 'commitDelayMs', 'now']);
const MIN_BUDGET_BYTES = MIN_SEGMENT_BYTES * MIN_SEGMENTS_PER_BUDGET;

export function resolveStreamLogOptions(options: StreamLogOptions): ResolvedStreamLogOptions {
  const issues: ConfigIssue[] = [];
  const given = options as unknown as Record<string, unknown>;
  for (const key of Object.keys(given)) {
    if (!KNOWN_KEYS.has(key)) issues.push({ path: `/${key}`, message: 'unknown option' });
  }
  if (typeof given.dir !== 'string' || given.dir.length === 0) {
    issues.push({ path: '/dir', message: 'must be a directory path' });
  }
  checkInteger(issues, 'maxBytes', given.maxBytes, MIN_BUDGET_BYTES, Number.MAX_SAFE_INTEGER);
  checkInteger(issues, 'maxAgeMs', given.maxAgeMs, 1, Number.MAX_SAFE_INTEGER);
  const budget = typeof given.maxBytes === 'number' ? given.maxBytes : MIN_BUDGET_BYTES;
  const segmentCeiling = Math.min(MAX_SEGMENT_BYTES, Math.floor(budget / MIN_SEGMENTS_PER_BUDGET));
  const segmentBytes = given.segmentBytes ?? Math.min(DEFAULT_SEGMENT_BYTES, segmentCeiling);
  checkInteger(issues, 'segmentBytes', segmentBytes, MIN_SEGMENT_BYTES, segmentCeiling);
  const commitDelayMs = given.commitDelayMs ?? 0;
  checkInteger(issues, 'commitDelayMs', commitDelayMs, 0, MAX_COMMIT_DELAY_MS);
  const now = given.now ?? Date.now;
  if (typeof now !== 'function') issues.push({ path: '/now', message: 'must be a function' });
  if (issues.length > 0) throw new ConfigError(issues, 'stream log options');
  return Object.freeze({
    dir: options.dir,
    maxBytes: options.maxBytes,
    maxAgeMs: options.maxAgeMs,
    segmentBytes: segmentBytes as number,
    commitDelayMs: commitDelayMs as number,
    now: now as () => number,
  });
}

function checkInteger(issues: ConfigIssue[], key: string, value: unknown, min: number, max: number): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    issues.push({ path: `/${key}`, message: `must be an integer from ${min} to ${max}` });
  }
}

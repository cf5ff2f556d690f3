/**
 * The file sink's format: one JSON object per line (JSON Lines), one file per UTC day of writing.
 *
 *   {"topic":"press-7/temp","seq":12,"value":21.5,"quality":"good","sourceTime":"2026-12-01T11:00:00.000Z"}
 *   {"topic":"press-7/temp","gap":{"from":13,"to":99,"reason":"retention"}}
 *   {"topic":"press-7/temp","reset":{"from":1,"held":250,"reason":"the OT log was re-created: ..."}}
 *
 * A reset says the lines of its topic from `from` to `held` before it came from a log the OT
 * agent no longer has (re-created, or restored from an older copy): the points from `from` after
 * it replace them.
 *
 * A point's `reason` follows its quality when there is one; values are JSON as they are (numbers,
 * booleans, strings, arrays of numbers); times are ISO 8601 UTC with milliseconds. decodeLine
 * reads back exactly what encodeLine wrote, and nothing else.
 */
import { isValidTopic } from '../../../relay/protocol/topics.ts';
import { QUALITIES, type Point, type PointValue, type Quality } from '../../points/point.ts';
import type { SinkEntry } from './sink.ts';

const DATA_FILE = /^points-(\d{4}-\d{2}-\d{2})\.jsonl$/;
const ISO_DAY = /^\d{4}-\d{2}-\d{2}$/;
const textDecoder = new TextDecoder('utf-8', { fatal: true });

/** The file that entries written at `nowMs` go to; names sort in day order (years 0000-9999). */
export function dataFileName(nowMs: number): string | undefined {
  const day = new Date(nowMs).toISOString().slice(0, 10);
  return ISO_DAY.test(day) ? `points-${day}.jsonl` : undefined;
}

export function isDataFileName(name: string): boolean {
  return DATA_FILE.test(name);
}

/** The line of one entry, with its newline. Entries are checked (entry-checks.ts) before. */
export function encodeLine(entry: SinkEntry): string {
  if (entry.kind === 'gap') {
    const { topic, from, to, reason } = entry;
    return `${JSON.stringify({ topic, gap: { from, to, reason } })}\n`;
  }
  if (entry.kind === 'reset') {
    const { topic, from, held, reason } = entry;
    return `${JSON.stringify({ topic, reset: { from, held, reason } })}\n`;
  }
  const { topic, seq, value, quality, reason, sourceTime } = entry.point;
  // The text JSON.stringify makes of {topic, seq, value, quality, reason?, sourceTime}, built
  // without the object: this is the IT agent's hottest line (the runtime benchmark: a quarter of
  // its CPU before). seq is a safe integer, and an ISO time needs no escaping.
  const because = reason === undefined ? '' : `,"reason":${JSON.stringify(reason)}`;
  return `{"topic":${JSON.stringify(topic)},"seq":${seq},"value":${JSON.stringify(value)},"quality":${JSON.stringify(quality)}${because},"sourceTime":"${isoTime(sourceTime)}"}\n`;
}

let cachedSecond = Number.NaN;
let cachedSecondPrefix = '';

/**
 * `new Date(ms).toISOString()`, formatting each second once: a sink writes runs of points a
 * millisecond apart, and the date formatting was half the cost of a line. Source times are whole
 * milliseconds >= 0 (entry-checks.ts), and every ISO time ends in ".sssZ".
 */
function isoTime(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== cachedSecond) {
    const iso = new Date(second * 1000).toISOString();
    cachedSecondPrefix = iso.slice(0, iso.length - 4);
    cachedSecond = second;
  }
  const milliseconds = ms - second * 1000;
  return `${cachedSecondPrefix}${String(milliseconds).padStart(3, '0')}Z`;
}

/** The entry a line (without its newline) holds, or undefined when it is not one encodeLine writes. */
export function decodeLine(bytes: Uint8Array): SinkEntry | undefined {
  const line = parseObject(bytes);
  if (line === undefined || typeof line.topic !== 'string' || !isValidTopic(line.topic)) return undefined;
  if ('gap' in line) return decodeGap(line.topic, line);
  return 'reset' in line ? decodeReset(line.topic, line) : decodePoint(line.topic, line);
}

function decodeReset(topic: string, line: Record<string, unknown>): SinkEntry | undefined {
  if (!hasOnlyKeys(line, ['topic', 'reset'])) return undefined;
  const reset = line.reset as Record<string, unknown> | null;
  if (typeof reset !== 'object' || reset === null || !hasOnlyKeys(reset, ['from', 'held', 'reason'])) {
    return undefined;
  }
  const { from, held, reason } = reset;
  if (!isSequence(from) || !isSequence(held) || from > held || typeof reason !== 'string') return undefined;
  return { kind: 'reset', topic, from, held, reason };
}

function decodeGap(topic: string, line: Record<string, unknown>): SinkEntry | undefined {
  if (!hasOnlyKeys(line, ['topic', 'gap'])) return undefined;
  const gap = line.gap as Record<string, unknown> | null;
  if (typeof gap !== 'object' || gap === null || !hasOnlyKeys(gap, ['from', 'to', 'reason']))
    return undefined;
  const { from, to, reason } = gap;
  if (!isSequence(from) || !isSequence(to) || to < from || typeof reason !== 'string') return undefined;
  return { kind: 'gap', topic, from, to, reason };
}

function decodePoint(topic: string, line: Record<string, unknown>): SinkEntry | undefined {
  const keys = ['topic', 'seq', 'value', 'quality', 'sourceTime', ...('reason' in line ? ['reason'] : [])];
  if (!hasOnlyKeys(line, keys)) return undefined;
  const { seq, value, quality, reason, sourceTime } = line;
  if (!isSequence(seq) || !isPointValue(value)) return undefined;
  if (!QUALITIES.includes(quality as Quality) || (reason !== undefined && typeof reason !== 'string')) {
    return undefined;
  }
  if (typeof sourceTime !== 'string') return undefined;
  const time = Date.parse(sourceTime);
  // Only the canonical form encodeLine writes: anything else was not written by this sink.
  if (!Number.isFinite(time) || new Date(time).toISOString() !== sourceTime) return undefined;
  const point: Point = {
    topic,
    seq,
    value,
    quality: quality as Quality,
    ...(reason === undefined ? {} : { reason }),
    sourceTime: time,
  };
  return { kind: 'point', point };
}

function parseObject(bytes: Uint8Array): Record<string, unknown> | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(textDecoder.decode(bytes));
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
  return parsed as Record<string, unknown>;
}

function isSequence(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1;
}

function isPointValue(value: unknown): value is PointValue {
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'string') return true;
  return Array.isArray(value) && value.every((item) => typeof item === 'number');
}

function hasOnlyKeys(object: object, keys: readonly string[]): boolean {
  const present = Object.keys(object);
  return present.length === keys.length && present.every((key) => keys.includes(key));
}

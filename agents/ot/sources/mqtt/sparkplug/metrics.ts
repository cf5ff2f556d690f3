/**
 * A Sparkplug B metric, as Eclipse Tahu's sparkplug-payload decodes it, as a point value. Tahu
 * hands 64-bit fields over as `Long` objects (protobufjs with the long package), and reads UInt32
 * with `Long.toInt()`, which makes values above 2^31 - 1 negative: both are mended here. Scalars
 * become numbers, booleans or strings; DataSet, Bytes, File, Template and property sets have no
 * point value and are reported as unsupported. Also what a payload's metrics say about the session:
 * the aliases a birth declares, its bdSeq, and which metrics are controls rather than values.
 */
import type { UMetric, UPayload } from 'sparkplug-payload/lib/sparkplugbpayload.js';
import { MAX_STRING_VALUE_BYTES, type PointValue } from '../../../../points/point.ts';
import { BDSEQ_METRIC } from './topics.ts';

export type MetricValue =
  | { readonly kind: 'value'; readonly value: PointValue; readonly problem: string | undefined }
  /** `is_null`: the edge node says it has no value; the reading is bad, with the value's zero. */
  | { readonly kind: 'null'; readonly zero: PointValue }
  /** A value this is not a point's, or out of what a point holds: a bad reading's reason. */
  | { readonly kind: 'invalid'; readonly reason: string; readonly zero: PointValue }
  | { readonly kind: 'unsupported' };

const NUMERIC_TYPES = new Set([
  'Int8',
  'Int16',
  'Int32',
  'Int64',
  'UInt8',
  'UInt16',
  'UInt32',
  'UInt64',
  'Float',
  'Double',
  'DateTime',
]);
const TEXT_TYPES = new Set(['String', 'Text', 'UUID']);

interface LongLike {
  toNumber(): number;
}

export function metricValue(metric: UMetric): MetricValue {
  const type = metric.type as string;
  const zero = zeroOf(type);
  if (zero === undefined) return { kind: 'unsupported' };
  const raw = metric.value;
  if (raw === null || raw === undefined || metric.isNull === true) return { kind: 'null', zero };
  if (type === 'Boolean') {
    return typeof raw === 'boolean'
      ? { kind: 'value', value: raw, problem: undefined }
      : { kind: 'invalid', reason: 'not a boolean', zero };
  }
  if (TEXT_TYPES.has(type)) {
    if (typeof raw !== 'string') return { kind: 'invalid', reason: 'not a string', zero };
    if (Buffer.byteLength(raw) > MAX_STRING_VALUE_BYTES) {
      return { kind: 'invalid', reason: `string longer than ${MAX_STRING_VALUE_BYTES} bytes`, zero };
    }
    return { kind: 'value', value: raw, problem: undefined };
  }
  let number = toNumber(raw);
  if (number === undefined) return { kind: 'invalid', reason: 'not a number', zero };
  // Tahu's UInt32 is Long.toInt(): a signed 32-bit reading of the unsigned value.
  if (type === 'UInt32') number = number >>> 0;
  if (!Number.isFinite(number)) return { kind: 'invalid', reason: 'not a finite number', zero };
  const lossy = (type === 'Int64' || type === 'UInt64') && !Number.isSafeInteger(number);
  return { kind: 'value', value: number, problem: lossy ? 'integer beyond 2^53, rounded' : undefined };
}

/**
 * A uint64 field (a timestamp in milliseconds since the epoch, a bdSeq) as a number, or undefined
 * if it is missing or beyond 2^53.
 */
export function wholeNumberOf(value: unknown): number | undefined {
  const number = toNumber(value);
  return number !== undefined && Number.isSafeInteger(number) && number >= 0 ? number : undefined;
}

/** A Sparkplug sequence number (uint64 on the wire, 0-255 in use), or undefined. */
export function sequenceOf(value: unknown): number | undefined {
  const seq = toNumber(value);
  return seq !== undefined && Number.isInteger(seq) && seq >= 0 && seq <= 255 ? seq : undefined;
}

function toNumber(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  if (isLong(value)) return value.toNumber();
  return undefined;
}

function isLong(value: unknown): value is LongLike {
  return (
    typeof value === 'object' && value !== null && typeof (value as Partial<LongLike>).toNumber === 'function'
  );
}

function zeroOf(type: string): PointValue | undefined {
  if (NUMERIC_TYPES.has(type)) return 0;
  if (type === 'Boolean') return false;
  if (TEXT_TYPES.has(type)) return '';
  return undefined;
}

/** Alias to name, from a birth: aliases are uint64 on the wire, kept as their decimal text. */
export function aliasesOf(payload: UPayload): Map<string, string> {
  const aliases = new Map<string, string>();
  for (const metric of payload.metrics ?? []) {
    if (metric.alias !== undefined && metric.alias !== null && typeof metric.name === 'string') {
      aliases.set(String(metric.alias), metric.name);
    }
  }
  return aliases;
}

export function aliasName(aliases: ReadonlyMap<string, string>, metric: UMetric): string | undefined {
  return metric.alias === undefined || metric.alias === null ? undefined : aliases.get(String(metric.alias));
}

export function bdSeqOf(payload: UPayload): number | undefined {
  const metric = payload.metrics?.find((candidate) => candidate.name === BDSEQ_METRIC);
  return metric === undefined ? undefined : wholeNumberOf(metric.value);
}

/** Session and command metrics, not process values. */
export function isControlMetric(name: string): boolean {
  return name === BDSEQ_METRIC || name.startsWith('Node Control/') || name.startsWith('Device Control/');
}

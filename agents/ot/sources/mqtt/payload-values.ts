/**
 * From a message's payload to a point value: the whole payload as text (`raw`), or a field of its
 * JSON found by a path, taken as the mapping's type, and optionally the source timestamp from
 * another field. A payload that does not give a value of the type yields a reason instead; the
 * source turns that into a bad-quality reading, never an exception.
 */
import { MAX_STRING_VALUE_BYTES } from '../../../points/point.ts';
import type { ValueType } from './config.ts';
import { readJsonPath, type JsonPathStep } from './json-path.ts';

/**
 * A JSON payload parsed for one value: a device's message of a few fields, not a document. Larger
 * ones are refused before parsing, so a runaway publisher costs no parse time.
 */
export const MAX_JSON_PAYLOAD_BYTES = 64 * 1024;
/** A raw payload is one value's text: at most a string point's length. */
export const MAX_RAW_PAYLOAD_BYTES = MAX_STRING_VALUE_BYTES;

/** How one mapping reads its payloads: its config, with the paths parsed. */
export interface ValueRule {
  /** undefined: the payload is the value's text (`raw`). */
  readonly valuePath: readonly JsonPathStep[] | undefined;
  readonly type: ValueType;
  readonly timestampPath: readonly JsonPathStep[] | undefined;
  readonly timestampUnit: 'ms' | 's';
}

export type ExtractedValue =
  | {
      readonly ok: true;
      readonly value: number | boolean | string;
      /** From the payload; undefined when the rule has no timestamp path, or it gave no time. */
      readonly sourceTime: number | undefined;
      /** Why the payload's timestamp could not be used (the reading is then uncertain). */
      readonly timeProblem: string | undefined;
    }
  | { readonly ok: false; readonly reason: string };

const NUMBER_TEXT = /^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

export function extractValue(rule: ValueRule, payload: Uint8Array): ExtractedValue {
  if (rule.valuePath === undefined) {
    if (payload.byteLength > MAX_RAW_PAYLOAD_BYTES) {
      return failed(`payload longer than ${MAX_RAW_PAYLOAD_BYTES} bytes`);
    }
    const text = decodeText(payload);
    if (text === undefined) return failed('payload is not UTF-8 text');
    return found(fromText(text, rule.type), undefined, undefined);
  }
  if (payload.byteLength > MAX_JSON_PAYLOAD_BYTES) {
    return failed(`payload longer than ${MAX_JSON_PAYLOAD_BYTES} bytes`);
  }
  const text = decodeText(payload);
  let document: unknown;
  try {
    if (text === undefined) throw new SyntaxError('not UTF-8');
    document = JSON.parse(text);
  } catch {
    return failed('payload is not JSON');
  }
  const field = readJsonPath(document, rule.valuePath);
  if (field === undefined) return failed('payload has no value at the value path');
  const value = fromJson(field, rule.type);
  if (rule.timestampPath === undefined) return found(value, undefined, undefined);
  const time = readTimestamp(readJsonPath(document, rule.timestampPath), rule.timestampUnit);
  return typeof time === 'number' ? found(value, time, undefined) : found(value, undefined, time);
}

/** The zero of a type: a bad reading's value when its topic has none to repeat. */
export function zeroValue(type: ValueType): number | boolean | string {
  switch (type) {
    case 'number':
      return 0;
    case 'boolean':
      return false;
    case 'string':
      return '';
  }
}

function fromText(text: string, type: ValueType): number | boolean | string | Problem {
  switch (type) {
    case 'number':
      return parseNumber(text) ?? { problem: 'payload is not a number' };
    case 'boolean':
      return parseBoolean(text) ?? { problem: 'payload is not a boolean (true, false, 1 or 0)' };
    case 'string':
      return text;
  }
}

/** A JSON field as the type: a number may come as numeric text, a boolean as 0/1 or its text. */
function fromJson(field: unknown, type: ValueType): number | boolean | string | Problem {
  switch (type) {
    case 'number':
      // JSON.parse reads 1e400 as Infinity, which no point holds.
      if (typeof field === 'number' && Number.isFinite(field)) return field;
      if (typeof field === 'string') return parseNumber(field) ?? { problem: 'value is not a number' };
      return { problem: 'value is not a number' };
    case 'boolean':
      if (typeof field === 'boolean') return field;
      if (field === 0 || field === 1) return field === 1;
      if (typeof field === 'string') return parseBoolean(field) ?? { problem: 'value is not a boolean' };
      return { problem: 'value is not a boolean' };
    case 'string':
      if (typeof field === 'string') return field;
      if (typeof field === 'number' || typeof field === 'boolean') return String(field);
      return { problem: 'value is not a string' };
  }
}

interface Problem {
  readonly problem: string;
}

function found(
  value: number | boolean | string | Problem,
  sourceTime: number | undefined,
  timeProblem: string | undefined,
): ExtractedValue {
  if (typeof value === 'object') return failed(value.problem);
  if (typeof value === 'string' && Buffer.byteLength(value) > MAX_STRING_VALUE_BYTES) {
    return failed(`string value longer than ${MAX_STRING_VALUE_BYTES} bytes`);
  }
  return { ok: true, value, sourceTime, timeProblem };
}

function failed(reason: string): ExtractedValue {
  return { ok: false, reason };
}

function decodeText(payload: Uint8Array): string | undefined {
  try {
    return utf8.decode(payload);
  } catch {
    return undefined;
  }
}

function parseNumber(text: string): number | undefined {
  const trimmed = text.trim();
  if (!NUMBER_TEXT.test(trimmed)) return undefined;
  const value = Number(trimmed);
  return Number.isFinite(value) ? value : undefined;
}

function parseBoolean(text: string): boolean | undefined {
  const word = text.trim().toLowerCase();
  if (word === 'true' || word === '1') return true;
  if (word === 'false' || word === '0') return false;
  return undefined;
}

/** Whole milliseconds since the epoch, or why the field is not a time. */
function readTimestamp(field: unknown, unit: 'ms' | 's'): number | string {
  if (field === undefined) return 'payload has no timestamp at the timestamp path';
  let ms: number;
  if (typeof field === 'number') ms = unit === 's' ? field * 1000 : field;
  else if (typeof field === 'string') ms = Date.parse(field);
  else return 'timestamp is not a number or a date text';
  ms = Math.round(ms);
  return Number.isSafeInteger(ms) && ms >= 0 ? ms : 'timestamp is not a time since 1970';
}

/**
 * A point, and its one binary encoding: the OT side writes it (into its durable log and into
 * publish frames), the relay carries it opaquely, every IT sink decodes it the same way.
 *
 * A point belongs to a stream: its topic and its sequence number travel in the frame's envelope
 * (a batch is points `seq` .. `seq + count - 1` of one topic) and in the log's record header, so
 * the record itself holds only what the point says:
 *
 *   byte 0      flags: bits 0-2 value kind, bits 3-4 quality, bit 5 a reason follows
 *   varint      source timestamp, milliseconds since the Unix epoch (LEB128, 6 bytes today)
 *   value       float64 (8 bytes, big-endian) | zigzag varint integer | nothing (booleans) |
 *               varint length + UTF-8 (string) | varint count + float64s (number array)
 *   reason      varint length + UTF-8, when bit 5 is set
 *
 * A float reading is 15 bytes, a counter 8-9, a boolean 7. Value kinds 6 and 7 are not points:
 * they mark the stream records of a replay (stream-record.ts), which decodePoint refuses.
 */
import { DmzError } from '../../relay/protocol/errors.ts';
import { RecordReader, RecordWriter } from './record-bytes.ts';

export const QUALITIES = ['good', 'uncertain', 'bad'] as const;
export type Quality = (typeof QUALITIES)[number];

export type PointValue = number | boolean | string | readonly number[];

/** What a source reports and a sink receives; `topic` and `seq` come from the envelope. */
export interface PointReading {
  readonly value: PointValue;
  readonly quality: Quality;
  /** Why the quality is not good: "timeout", "Modbus exception 2", "BadNodeIdUnknown". */
  readonly reason?: string;
  /** When the source says the value was true, in milliseconds since the Unix epoch. */
  readonly sourceTime: number;
}

export interface Point extends PointReading {
  readonly topic: string;
  readonly seq: number;
}

/** A string value: a tag's text (a recipe name, a batch id), not a document. */
export const MAX_STRING_VALUE_BYTES = 256;
/** A small array: a waveform snapshot or a vector reading, not a file. */
export const MAX_ARRAY_VALUE_LENGTH = 64;
/** A quality reason is a short code or phrase. */
export const MAX_REASON_BYTES = 128;

const KIND = { float: 0, integer: 1, false: 2, true: 3, string: 4, array: 5 } as const;
const KIND_MASK = 0b111;
const QUALITY_SHIFT = 3;
const QUALITY_MASK = 0b11;
const HAS_REASON = 1 << 5;
/** Flags bits not defined: a record that sets them is from a newer format, or garbage. */
const UNKNOWN_FLAGS = ~(KIND_MASK | (QUALITY_MASK << QUALITY_SHIFT) | HAS_REASON) & 0xff;
/** Integers within this magnitude go as zigzag varints; zigzag stays exact below 2^52 in doubles. */
const MAX_VARINT_INTEGER = 2 ** 52 - 1;

/** A high surrogate without its low half, or a low one without its high half. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const textEncoder = new TextEncoder();

/** The record of one reading. Throws AGENT_ERR_POINT_INVALID for a reading outside the model. */
export function encodePoint(reading: PointReading): Uint8Array {
  const writer = new RecordWriter();
  const quality = QUALITIES.indexOf(reading.quality);
  if (quality < 0) throw invalid('quality must be good, uncertain or bad');
  if (!Number.isSafeInteger(reading.sourceTime) || reading.sourceTime < 0) {
    throw invalid('source time must be whole milliseconds since the Unix epoch');
  }
  const reason = reading.reason === undefined ? undefined : utf8(reading.reason, MAX_REASON_BYTES, 'reason');
  const { value } = reading;
  let kind: number;
  if (typeof value === 'boolean') kind = value ? KIND.true : KIND.false;
  else if (typeof value === 'string') kind = KIND.string;
  else if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw invalid('a number value must be finite');
    kind = Number.isInteger(value) && Math.abs(value) <= MAX_VARINT_INTEGER ? KIND.integer : KIND.float;
  } else if (Array.isArray(value)) kind = KIND.array;
  else throw invalid('value must be a number, a boolean, a string or an array of numbers');
  writer.byte(kind | (quality << QUALITY_SHIFT) | (reason === undefined ? 0 : HAS_REASON));
  writer.varint(reading.sourceTime);
  switch (kind) {
    case KIND.float:
      writer.float64(value as number);
      break;
    case KIND.integer:
      writer.varint(zigzag(value as number));
      break;
    case KIND.string:
      writer.bytes(utf8(value as string, MAX_STRING_VALUE_BYTES, 'string value'));
      break;
    case KIND.array: {
      const numbers = value as readonly number[];
      if (numbers.length > MAX_ARRAY_VALUE_LENGTH) {
        throw invalid(`an array value holds at most ${MAX_ARRAY_VALUE_LENGTH} numbers`);
      }
      writer.varint(numbers.length);
      for (const number of numbers) {
        if (typeof number !== 'number' || !Number.isFinite(number)) {
          throw invalid('an array value holds finite numbers only');
        }
        writer.float64(number);
      }
      break;
    }
    default:
      break;
  }
  if (reason !== undefined) writer.bytes(reason);
  return writer.finish();
}

/** The reading a record holds. Throws AGENT_ERR_POINT_INVALID unless it is exactly one record. */
export function decodePoint(record: Uint8Array): PointReading {
  const reader = new RecordReader(record, invalid);
  const flags = reader.byte();
  if ((flags & UNKNOWN_FLAGS) !== 0) throw invalid('unknown flags');
  const quality = QUALITIES[(flags >> QUALITY_SHIFT) & QUALITY_MASK];
  if (quality === undefined) throw invalid('unknown quality');
  const sourceTime = reader.varint();
  let value: PointValue;
  switch (flags & KIND_MASK) {
    case KIND.float:
      value = reader.float64();
      break;
    case KIND.integer:
      value = unzigzag(reader.varint());
      break;
    case KIND.false:
      value = false;
      break;
    case KIND.true:
      value = true;
      break;
    case KIND.string:
      value = reader.text(MAX_STRING_VALUE_BYTES);
      break;
    case KIND.array: {
      const length = reader.varint();
      if (length > MAX_ARRAY_VALUE_LENGTH) throw invalid('array value too long');
      value = Array.from({ length }, () => reader.float64());
      break;
    }
    default:
      throw invalid('unknown value kind');
  }
  const reason = (flags & HAS_REASON) === 0 ? undefined : reader.text(MAX_REASON_BYTES);
  reader.end();
  return { value, quality, ...(reason === undefined ? {} : { reason }), sourceTime };
}

function utf8(text: string, maxBytes: number, what: string): Uint8Array {
  if (typeof text !== 'string') throw invalid(`${what} must be a string`);
  // A lone surrogate would come back as U+FFFD: the reading must be what it was.
  if (LONE_SURROGATE.test(text)) throw invalid(`${what} is not well-formed Unicode`);
  const bytes = textEncoder.encode(text);
  if (bytes.byteLength > maxBytes) throw invalid(`${what} longer than ${maxBytes} bytes`);
  return bytes;
}

/** Zigzag (as in Protocol Buffers): small negative integers stay small. */
function zigzag(value: number): number {
  return value >= 0 ? value * 2 : -value * 2 - 1;
}

function unzigzag(value: number): number {
  return value % 2 === 0 ? value / 2 : -(value + 1) / 2;
}

function invalid(detail: string, cause?: unknown): DmzError {
  return new DmzError('AGENT_ERR_POINT_INVALID', `point is invalid: ${detail}`, { cause });
}

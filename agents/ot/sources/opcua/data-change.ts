/**
 * One OPC UA data change as a point: its StatusCode as the quality, its source timestamp kept, its
 * Variant as a value of the point model. A value the model cannot hold (a ByteString, a structure,
 * a long array, a 64-bit integer beyond 2^53) becomes a bad reading that says why: a server can
 * send anything, and nothing it sends may stop the source.
 */
import { DataType, VariantArrayType, type DataValue, type StatusCode, type Variant } from 'node-opcua';
import {
  MAX_ARRAY_VALUE_LENGTH,
  MAX_REASON_BYTES,
  MAX_STRING_VALUE_BYTES,
  type PointReading,
  type PointValue,
  type Quality,
} from '../../../points/point.ts';

/** Part 4 §7.39 (StatusCode): the top two bits are the severity; 0b10 and 0b11 are both bad. */
const SEVERITY_SHIFT = 30;
const SEVERITY = { good: 0b00, uncertain: 0b01 } as const;

const NUMBER_TYPES: ReadonlySet<DataType> = new Set([
  DataType.SByte,
  DataType.Byte,
  DataType.Int16,
  DataType.UInt16,
  DataType.Int32,
  DataType.UInt32,
  DataType.Float,
  DataType.Double,
]);
const WIDE_INTEGER_TYPES: ReadonlySet<DataType> = new Set([DataType.Int64, DataType.UInt64]);

const textEncoder = new TextEncoder();

type Mapped = { readonly value: PointValue } | { readonly problem: string };

/**
 * The reading of one data change, taken at `now` (the source's clock). `lastValue` is what a bad
 * reading without a usable value of its own carries: the last one seen (a dashboard keeps showing
 * it, marked bad), or 0.
 */
export function readingFromDataValue(dataValue: DataValue, now: number, lastValue: PointValue): PointReading {
  const sourceTime = timeOf(dataValue.sourceTimestamp) ?? timeOf(dataValue.serverTimestamp) ?? now;
  const quality = qualityOf(dataValue.statusCode);
  const mapped = mapVariant(dataValue.value);
  if (quality === 'bad') {
    const value = 'value' in mapped ? mapped.value : lastValue;
    return { value, quality, reason: reasonOf(dataValue.statusCode), sourceTime };
  }
  if ('problem' in mapped)
    return { value: lastValue, quality: 'bad', reason: clip(mapped.problem), sourceTime };
  return quality === 'good'
    ? { value: mapped.value, quality, sourceTime }
    : { value: mapped.value, quality, reason: reasonOf(dataValue.statusCode), sourceTime };
}

export function qualityOf(statusCode: StatusCode): Quality {
  const severity = statusCode.value >>> SEVERITY_SHIFT;
  if (severity === SEVERITY.good) return 'good';
  return severity === SEVERITY.uncertain ? 'uncertain' : 'bad';
}

/** `BadNodeIdUnknown`: the status's name, as every OPC UA tool shows it. */
export function reasonOf(statusCode: StatusCode): string {
  return clip(statusCode.name);
}

/** A reason within the point model's bound (status names and our messages are ASCII). */
export function clip(reason: string): string {
  return reason.length > MAX_REASON_BYTES ? reason.slice(0, MAX_REASON_BYTES) : reason;
}

/** Milliseconds since the epoch; undefined for a missing timestamp or one before 1970 (MinDate). */
function timeOf(timestamp: Date | null | undefined): number | undefined {
  const time = timestamp?.getTime();
  return time !== undefined && Number.isSafeInteger(time) && time >= 0 ? time : undefined;
}

export function mapVariant(variant: Variant | null | undefined): Mapped {
  if (variant === null || variant === undefined || variant.dataType === DataType.Null) {
    return { problem: 'the server sent no value' };
  }
  const typeName = DataType[variant.dataType] ?? `type ${variant.dataType}`;
  if (variant.arrayType === VariantArrayType.Array) return mapArray(variant, typeName);
  if (variant.arrayType !== VariantArrayType.Scalar)
    return { problem: `a ${typeName} matrix is outside the point model` };
  const value: unknown = variant.value;
  const type = variant.dataType;
  if (NUMBER_TYPES.has(type)) return mapNumber(value, typeName);
  if (WIDE_INTEGER_TYPES.has(type)) return mapWideInteger(value, type, typeName);
  if (type === DataType.Boolean) {
    return typeof value === 'boolean' ? { value } : { problem: 'malformed Boolean' };
  }
  if (type === DataType.String) {
    return typeof value === 'string' ? mapString(value) : { problem: 'the server sent a null String' };
  }
  if (type === DataType.LocalizedText) {
    const text = (value as { text?: unknown } | null)?.text;
    return typeof text === 'string' ? mapString(text) : { problem: 'the server sent an empty LocalizedText' };
  }
  // A DateTime as the point model's number: milliseconds since the Unix epoch, as source times are.
  if (type === DataType.DateTime) {
    return value instanceof Date && Number.isFinite(value.getTime())
      ? { value: value.getTime() }
      : { problem: 'malformed DateTime' };
  }
  return { problem: `${typeName} is outside the point model` };
}

function mapArray(variant: Variant, typeName: string): Mapped {
  const numeric = NUMBER_TYPES.has(variant.dataType) || WIDE_INTEGER_TYPES.has(variant.dataType);
  if (!numeric) return { problem: `an array of ${typeName} is outside the point model` };
  // node-opcua hands numeric arrays out as typed arrays (Float64Array, Int32Array, ...).
  const elements = Array.from(variant.value as ArrayLike<unknown>);
  if (elements.length > MAX_ARRAY_VALUE_LENGTH) {
    return { problem: `an array of ${elements.length} values, more than ${MAX_ARRAY_VALUE_LENGTH}` };
  }
  const numbers: number[] = [];
  for (const element of elements) {
    const mapped = NUMBER_TYPES.has(variant.dataType)
      ? mapNumber(element, typeName)
      : mapWideInteger(element, variant.dataType, typeName);
    if ('problem' in mapped) return mapped;
    numbers.push(mapped.value as number);
  }
  return { value: numbers };
}

function mapNumber(value: unknown, typeName: string): Mapped {
  if (typeof value !== 'number') return { problem: `malformed ${typeName}` };
  // The point model holds finite numbers only: NaN and infinities of a Float or Double say "no value".
  return Number.isFinite(value) ? { value } : { problem: `${typeName} ${value} is not a finite number` };
}

/** Int64 and UInt64 arrive as [high, low] 32-bit halves; within 2^53 they are exact numbers. */
function mapWideInteger(value: unknown, dataType: DataType, typeName: string): Mapped {
  if (!Array.isArray(value) || value.length !== 2 || !value.every((half) => Number.isInteger(half))) {
    return { problem: `malformed ${typeName}` };
  }
  const bits = (BigInt(value[0] as number) << 32n) | BigInt(value[1] as number);
  const integer = dataType === DataType.Int64 ? BigInt.asIntN(64, bits) : BigInt.asUintN(64, bits);
  if (integer > BigInt(Number.MAX_SAFE_INTEGER) || integer < BigInt(Number.MIN_SAFE_INTEGER)) {
    return { problem: `${typeName} ${integer} is beyond 2^53, which a point cannot hold exactly` };
  }
  return { value: Number(integer) };
}

function mapString(text: string): Mapped {
  const bytes = textEncoder.encode(text).byteLength;
  return bytes > MAX_STRING_VALUE_BYTES
    ? { problem: `a string of ${bytes} bytes, more than ${MAX_STRING_VALUE_BYTES}` }
    : { value: text };
}

/**
 * A write's value as the registers or coil state a point spans: register-decoding.ts run
 * backwards, with the same byte and word orders. A value in engineering units becomes raw =
 * (value - offset) / scale; it must land on a raw step (a register holds integers) and fit the
 * point's type, else the write is refused before anything is sent.
 */
import type { WriteValue } from '../source.ts';
import type { WriteRequest } from './device-connection.ts';
import { reverseWords } from './register-decoding.ts';
import type { ModbusPoint } from './register-map.ts';

const REGISTER_BYTES = 2;
/**
 * How far from a raw step a scaled value may be and still be that step: the rounding of
 * (value - offset) / scale, a few units in the last place of its operands, no more. A tolerance
 * relative to the step alone would grow past half a step for raw values near a billion (int32,
 * uint32), and silently round a value that is no step.
 */
const ROUNDING_ULPS = 4;

const INTEGER_BOUNDS = {
  int16: [-0x8000, 0x7fff],
  uint16: [0, 0xffff],
  int32: [-0x8000_0000, 0x7fff_ffff],
  uint32: [0, 0xffff_ffff],
} as const;

/** Largest finite float32: a larger value would be written as Infinity. */
const MAX_FLOAT32 = 3.4028234663852886e38;

export type Encoded =
  | { readonly ok: true; readonly request: WriteRequest }
  | {
      readonly ok: false;
      readonly code: 'AGENT_ERR_WRITE_WRONG_TYPE' | 'AGENT_ERR_WRITE_OUT_OF_RANGE';
      readonly message: string;
    };

/** The write request for `value` to `point` (a holding register point or a coil). */
export function encodeWrite(point: ModbusPoint, value: WriteValue): Encoded {
  if (point.table === 'coil') {
    if (typeof value !== 'boolean') return wrongType('a coil takes a boolean');
    return { ok: true, request: { table: 'coil', address: point.address, state: value } };
  }
  if (point.table !== 'holding' || point.type === 'bit') return wrongType('the point is not writable');
  const raw = Buffer.alloc(point.count * REGISTER_BYTES);
  if (point.type === 'string') {
    if (typeof value !== 'string') return wrongType('a string register block takes a string');
    const bytes = Buffer.from(value, 'latin1');
    // Latin-1 as decodeText reads it: a character outside it would come back as another one.
    if (bytes.toString('latin1') !== value) return outOfRange('the text is not Latin-1');
    if (bytes.length > raw.length) return outOfRange(`the text is longer than ${raw.length} characters`);
    bytes.copy(raw);
  } else {
    if (typeof value !== 'number') return wrongType(`a ${point.type} register takes a number`);
    const problem = writeNumber(raw, point, value);
    if (problem !== undefined) return outOfRange(problem);
  }
  if (point.wordOrder === 'little' && point.count > 1) reverseWords(raw);
  if (point.byteOrder === 'little') raw.swap16();
  const registers: number[] = [];
  for (let offset = 0; offset < raw.length; offset += REGISTER_BYTES)
    registers.push(raw.readUInt16BE(offset));
  return { ok: true, request: { table: 'holding', address: point.address, registers } };
}

/** Writes `value` big-endian into `raw`; a message when it does not fit. */
function writeNumber(raw: Buffer, point: ModbusPoint, value: number): string | undefined {
  const scaled = (value - point.offset) / point.scale;
  switch (point.type) {
    case 'float32':
      if (Math.abs(scaled) > MAX_FLOAT32) return `${value} does not fit a float32`;
      raw.writeFloatBE(scaled, 0);
      return undefined;
    case 'float64':
      raw.writeDoubleBE(scaled, 0);
      return undefined;
    case 'int16':
    case 'uint16':
    case 'int32':
    case 'uint32': {
      const step = Math.round(scaled);
      const noise =
        ROUNDING_ULPS *
        Number.EPSILON *
        ((Math.abs(value) + Math.abs(point.offset)) / Math.abs(point.scale) + Math.abs(scaled));
      if (Math.abs(scaled - step) > noise)
        return `${value} is not a value of this register (its steps are ${point.scale})`;
      const [min, max] = INTEGER_BOUNDS[point.type];
      if (step < min || step > max) return `${value} does not fit a ${point.type}`;
      if (point.type === 'int16') raw.writeInt16BE(step, 0);
      else if (point.type === 'uint16') raw.writeUInt16BE(step, 0);
      else if (point.type === 'int32') raw.writeInt32BE(step, 0);
      else raw.writeUInt32BE(step, 0);
      return undefined;
    }
    case 'bit':
    case 'string':
      return 'the point takes no number';
  }
}

function wrongType(message: string): Encoded {
  return { ok: false, code: 'AGENT_ERR_WRITE_WRONG_TYPE', message };
}

function outOfRange(message: string): Encoded {
  return { ok: false, code: 'AGENT_ERR_WRITE_OUT_OF_RANGE', message };
}

/**
 * A point's value from the registers or bits a request read. Registers travel big-endian (spec
 * 4.2: "the most significant byte is sent first"); devices disagree about everything wider than a
 * register, so byte order (within each register) and word order (of the registers in a 32- or
 * 64-bit value) are set per point. In the usual letters, with A the most significant byte:
 *
 *   byteOrder big,    wordOrder big     ABCD (the standard)      float64: ABCDEFGH
 *   byteOrder big,    wordOrder little  CDAB ("word swap")       float64: GHEFCDAB
 *   byteOrder little, wordOrder big     BADC ("byte swap")       float64: BADCFEHG
 *   byteOrder little, wordOrder little  DCBA (little-endian)     float64: HGFEDCBA
 */
import type { PointValue } from '../../../points/point.ts';
import type { ModbusPoint } from './register-map.ts';

const REGISTER_BYTES = 2;
/**
 * Significant digits of a scaled value: a double holds any 15-digit decimal exactly (DBL_DIG), so
 * rounding raw * scale + offset to 15 digits drops only the noise of the binary arithmetic
 * (215 * 0.1 reads 21.5, not 21.500000000000004).
 */
const SCALED_DIGITS = 15;

/**
 * The value of a register point whose first register is at `offset` (in registers) into `bytes`,
 * the data of a Read Holding/Input Registers response (spec 6.3: two bytes per register).
 */
export function decodeRegisters(point: ModbusPoint, bytes: Uint8Array, offset: number): PointValue {
  const start = offset * REGISTER_BYTES;
  const length = point.count * REGISTER_BYTES;
  if (start < 0 || start + length > bytes.length) {
    throw new RangeError(`registers ${offset}..${offset + point.count - 1} are not in the response`);
  }
  const raw = Buffer.from(bytes.subarray(start, start + length));
  if (point.byteOrder === 'little') raw.swap16();
  if (point.wordOrder === 'little' && point.count > 1) reverseWords(raw);
  switch (point.type) {
    case 'int16':
      return toEngineering(raw.readInt16BE(0), point);
    case 'uint16':
      return toEngineering(raw.readUInt16BE(0), point);
    case 'int32':
      return toEngineering(raw.readInt32BE(0), point);
    case 'uint32':
      return toEngineering(raw.readUInt32BE(0), point);
    case 'float32':
      return toEngineering(raw.readFloatBE(0), point);
    case 'float64':
      return toEngineering(raw.readDoubleBE(0), point);
    case 'bit':
      return ((raw.readUInt16BE(0) >> point.bit) & 1) === 1;
    case 'string':
      return decodeText(raw);
  }
}

/** The value of a coil or discrete input at `offset` (in bits) into a response's bits. */
export function decodeBit(bits: readonly boolean[], offset: number): boolean {
  const bit = bits[offset];
  if (bit === undefined) throw new RangeError(`bit ${offset} is not in the response`);
  return bit;
}

/** raw * scale + offset, exact when the point is not scaled. */
export function toEngineering(raw: number, point: Pick<ModbusPoint, 'scale' | 'offset'>): number {
  if (point.scale === 1 && point.offset === 0) return raw;
  return Number((raw * point.scale + point.offset).toPrecision(SCALED_DIGITS));
}

/**
 * A string register block: one character per byte up to the first NUL (devices pad with NULs).
 * Latin-1, so that every byte a device sends reads as one character and none is lost to a
 * replacement character; ASCII, which nearly every device uses, reads the same.
 */
function decodeText(raw: Buffer): string {
  const end = raw.indexOf(0);
  return raw.toString('latin1', 0, end < 0 ? raw.length : end);
}

/** Reverses the order of the 16-bit words in place (the bytes inside each word stay). */
export function reverseWords(raw: Buffer): void {
  const words = raw.length / REGISTER_BYTES;
  for (let low = 0, high = words - 1; low < high; low++, high--) {
    const first = raw.readUInt16BE(low * REGISTER_BYTES);
    raw.writeUInt16BE(raw.readUInt16BE(high * REGISTER_BYTES), low * REGISTER_BYTES);
    raw.writeUInt16BE(first, high * REGISTER_BYTES);
  }
}

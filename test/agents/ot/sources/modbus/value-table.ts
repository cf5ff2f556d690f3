/**
 * Known register contents and the values they hold, for every type in every byte and word order:
 * written out by hand from the bytes (A the most significant), never computed by the code under
 * test. The decoder's unit test, the ServerTCP source test and the pymodbus system test all read
 * this one table. Every byte of a multi-register value differs, so a swap in the wrong place shows.
 */
import type { PointValue } from '../../../../../agents/points/point.ts';

export interface ValueCase {
  readonly name: string;
  readonly type: 'int16' | 'uint16' | 'int32' | 'uint32' | 'float32' | 'float64' | 'bit' | 'string';
  readonly byteOrder?: 'big' | 'little';
  readonly wordOrder?: 'big' | 'little';
  readonly bit?: number;
  readonly length?: number;
  /** The registers as the device holds them, from the point's address on. */
  readonly registers: readonly number[];
  readonly expected: PointValue;
}

/** Math.fround(Math.PI): 0x40490FDB. */
const FLOAT32_PI = 3.1415927410125732;

export const VALUE_CASES: readonly ValueCase[] = [
  { name: 'int16-big', type: 'int16', registers: [0xff85], expected: -123 },
  { name: 'int16-little', type: 'int16', byteOrder: 'little', registers: [0x85ff], expected: -123 },
  { name: 'uint16-big', type: 'uint16', registers: [0xa1b2], expected: 41394 },
  { name: 'uint16-little', type: 'uint16', byteOrder: 'little', registers: [0xb2a1], expected: 41394 },
  // int32 0xFEDCBA98
  { name: 'int32-abcd', type: 'int32', registers: [0xfedc, 0xba98], expected: -19088744 },
  {
    name: 'int32-cdab',
    type: 'int32',
    wordOrder: 'little',
    registers: [0xba98, 0xfedc],
    expected: -19088744,
  },
  {
    name: 'int32-badc',
    type: 'int32',
    byteOrder: 'little',
    registers: [0xdcfe, 0x98ba],
    expected: -19088744,
  },
  {
    name: 'int32-dcba',
    type: 'int32',
    byteOrder: 'little',
    wordOrder: 'little',
    registers: [0x98ba, 0xdcfe],
    expected: -19088744,
  },
  // uint32 0xF1E2D3C4
  { name: 'uint32-abcd', type: 'uint32', registers: [0xf1e2, 0xd3c4], expected: 4058174404 },
  {
    name: 'uint32-cdab',
    type: 'uint32',
    wordOrder: 'little',
    registers: [0xd3c4, 0xf1e2],
    expected: 4058174404,
  },
  {
    name: 'uint32-badc',
    type: 'uint32',
    byteOrder: 'little',
    registers: [0xe2f1, 0xc4d3],
    expected: 4058174404,
  },
  {
    name: 'uint32-dcba',
    type: 'uint32',
    byteOrder: 'little',
    wordOrder: 'little',
    registers: [0xc4d3, 0xe2f1],
    expected: 4058174404,
  },
  // float32 0x40490FDB
  { name: 'float32-abcd', type: 'float32', registers: [0x4049, 0x0fdb], expected: FLOAT32_PI },
  {
    name: 'float32-cdab',
    type: 'float32',
    wordOrder: 'little',
    registers: [0x0fdb, 0x4049],
    expected: FLOAT32_PI,
  },
  {
    name: 'float32-badc',
    type: 'float32',
    byteOrder: 'little',
    registers: [0x4940, 0xdb0f],
    expected: FLOAT32_PI,
  },
  {
    name: 'float32-dcba',
    type: 'float32',
    byteOrder: 'little',
    wordOrder: 'little',
    registers: [0xdb0f, 0x4940],
    expected: FLOAT32_PI,
  },
  // float64 0x400921FB54442D18 (Math.PI)
  {
    name: 'float64-abcdefgh',
    type: 'float64',
    registers: [0x4009, 0x21fb, 0x5444, 0x2d18],
    expected: Math.PI,
  },
  {
    name: 'float64-ghefcdab',
    type: 'float64',
    wordOrder: 'little',
    registers: [0x2d18, 0x5444, 0x21fb, 0x4009],
    expected: Math.PI,
  },
  {
    name: 'float64-badcfehg',
    type: 'float64',
    byteOrder: 'little',
    registers: [0x0940, 0xfb21, 0x4454, 0x182d],
    expected: Math.PI,
  },
  {
    name: 'float64-hgfedcba',
    type: 'float64',
    byteOrder: 'little',
    wordOrder: 'little',
    registers: [0x182d, 0x4454, 0xfb21, 0x0940],
    expected: Math.PI,
  },
  // 0x8004: bits 15 and 2 set.
  { name: 'bit-2', type: 'bit', bit: 2, registers: [0x8004], expected: true },
  { name: 'bit-3', type: 'bit', bit: 3, registers: [0x8004], expected: false },
  { name: 'bit-15', type: 'bit', bit: 15, registers: [0x8004], expected: true },
  { name: 'bit-2-little', type: 'bit', bit: 2, byteOrder: 'little', registers: [0x0480], expected: true },
  // "PUMP-7" padded with NULs: 50 55 4D 50 2D 37 00 00.
  {
    name: 'string-big',
    type: 'string',
    length: 4,
    registers: [0x5055, 0x4d50, 0x2d37, 0x0000],
    expected: 'PUMP-7',
  },
  {
    name: 'string-little',
    type: 'string',
    byteOrder: 'little',
    length: 4,
    registers: [0x5550, 0x504d, 0x372d, 0x0000],
    expected: 'PUMP-7',
  },
  { name: 'string-full', type: 'string', length: 2, registers: [0x4142, 0x4344], expected: 'ABCD' },
];

/**
 * The cases laid out as points of one device at `base`, each `stride` registers after the one
 * before (wider than any case, so each point has its own registers).
 */
export function valuePoints(base = 0, stride = 8) {
  return VALUE_CASES.map((testCase, index) => ({
    testCase,
    address: base + index * stride,
    point: {
      name: testCase.name,
      table: 'holding' as const,
      address: base + index * stride,
      type: testCase.type,
      ...(testCase.byteOrder === undefined ? {} : { byteOrder: testCase.byteOrder }),
      ...(testCase.wordOrder === undefined ? {} : { wordOrder: testCase.wordOrder }),
      ...(testCase.bit === undefined ? {} : { bit: testCase.bit }),
      ...(testCase.length === undefined ? {} : { length: testCase.length }),
    },
  }));
}

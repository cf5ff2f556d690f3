import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  decodePoint,
  encodePoint,
  MAX_ARRAY_VALUE_LENGTH,
  MAX_REASON_BYTES,
  MAX_STRING_VALUE_BYTES,
  QUALITIES,
  type PointReading,
} from '../../../agents/points/point.ts';
import { DmzError } from '../../../relay/protocol/errors.ts';

const codeOf = (run: () => unknown): string => {
  try {
    run();
    return 'none';
  } catch (error) {
    return error instanceof DmzError ? error.code : String(error);
  }
};

const NOW = Date.parse('2026-12-01T10:00:00.000Z');
const finite = fc.double({ noNaN: true, noDefaultInfinity: true });
const reading: fc.Arbitrary<PointReading> = fc.record(
  {
    value: fc.oneof(
      finite,
      fc.integer({ min: -(2 ** 52 - 1), max: 2 ** 52 - 1 }),
      fc.boolean(),
      fc.string({ unit: 'grapheme', maxLength: 60 }),
      fc.array(finite, { maxLength: MAX_ARRAY_VALUE_LENGTH }),
    ),
    quality: fc.constantFrom(...QUALITIES),
    reason: fc.string({ unit: 'grapheme', maxLength: 20 }),
    sourceTime: fc.integer({ min: 0, max: 2 ** 47 }),
  },
  { requiredKeys: ['value', 'quality', 'sourceTime'] },
);

describe('agents/points point encoding', () => {
  it('round-trips every reading of the model', () => {
    fc.assert(
      fc.property(reading, (point) => {
        // -0 is a float that equals 0: the encoding keeps the number, not its sign bit.
        const expected =
          typeof point.value === 'number' && Object.is(point.value, -0)
            ? { ...point, value: 0 }
            : { ...point };
        assert.deepEqual(decodePoint(encodePoint(point)), expected);
      }),
      { numRuns: 2_000 },
    );
  });

  const SIZES: readonly [string, PointReading, number][] = [
    ['a float reading', { value: 21.5, quality: 'good', sourceTime: NOW }, 15],
    ['a counter', { value: 123_456, quality: 'good', sourceTime: NOW }, 10],
    ['a boolean', { value: true, quality: 'good', sourceTime: NOW }, 7],
    ['a bad reading with its reason', { value: 0, quality: 'bad', reason: 'timeout', sourceTime: NOW }, 16],
  ];
  for (const [name, point, bytes] of SIZES) {
    it(`encodes ${name} in ${bytes} bytes`, () => {
      assert.equal(encodePoint(point).byteLength, bytes);
    });
  }

  const REFUSED: readonly [string, unknown][] = [
    ['NaN', { value: Number.NaN, quality: 'good', sourceTime: NOW }],
    ['Infinity', { value: Number.POSITIVE_INFINITY, quality: 'good', sourceTime: NOW }],
    ['an unknown quality', { value: 1, quality: 'fine', sourceTime: NOW }],
    ['a fractional timestamp', { value: 1, quality: 'good', sourceTime: 1.5 }],
    ['a negative timestamp', { value: 1, quality: 'good', sourceTime: -1 }],
    [
      'a string too long',
      { value: 'x'.repeat(MAX_STRING_VALUE_BYTES + 1), quality: 'good', sourceTime: NOW },
    ],
    [
      'an array too long',
      { value: new Array<number>(MAX_ARRAY_VALUE_LENGTH + 1).fill(1), quality: 'good', sourceTime: NOW },
    ],
    ['an array with a string in it', { value: [1, 'two'], quality: 'good', sourceTime: NOW }],
    [
      'a reason too long',
      { value: 1, quality: 'bad', reason: 'r'.repeat(MAX_REASON_BYTES + 1), sourceTime: NOW },
    ],
    ['an object value', { value: { x: 1 }, quality: 'good', sourceTime: NOW }],
    ['a string that is not well-formed Unicode', { value: 'a\ud800b', quality: 'good', sourceTime: NOW }],
  ];
  for (const [name, point] of REFUSED) {
    it(`refuses to encode ${name} with AGENT_ERR_POINT_INVALID`, () => {
      assert.equal(
        codeOf(() => encodePoint(point as PointReading)),
        'AGENT_ERR_POINT_INVALID',
      );
    });
  }

  const float = encodePoint({ value: 21.5, quality: 'good', sourceTime: NOW });
  const MALFORMED: readonly [string, Uint8Array][] = [
    ['an empty record', new Uint8Array(0)],
    ['a record cut short', float.subarray(0, float.byteLength - 1)],
    ['bytes after the record', Uint8Array.of(...float, 0)],
    ['unknown flags', Uint8Array.of(0x80, ...float.subarray(1))],
    ['an unknown quality', Uint8Array.of(3 << 3, ...float.subarray(1))],
    ['an unknown value kind', Uint8Array.of(7, ...float.subarray(1))],
    ['a string that is not UTF-8', Uint8Array.of(4, 1, 2, 0xc3, 0x28)],
    ['a NaN float', Uint8Array.of(0, 1, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0)],
    ['a varint that never ends', Uint8Array.of(0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)],
  ];
  for (const [name, record] of MALFORMED) {
    it(`refuses to decode ${name} with AGENT_ERR_POINT_INVALID`, () => {
      assert.equal(
        codeOf(() => decodePoint(record)),
        'AGENT_ERR_POINT_INVALID',
      );
    });
  }

  it('turns any bytes into a reading or AGENT_ERR_POINT_INVALID, never another exception', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
        const code = codeOf(() => decodePoint(bytes));
        assert.ok(code === 'none' || code === 'AGENT_ERR_POINT_INVALID', code);
      }),
      { numRuns: 5_000 },
    );
  });
});

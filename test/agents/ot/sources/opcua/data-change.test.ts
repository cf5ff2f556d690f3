/**
 * Data changes as points, in memory (a table): every StatusCode severity, the timestamps kept or
 * filled in, and each Variant type mapped to the point model or refused with a reason; whatever
 * a server sends becomes a reading the log takes.
 */
import '../../../../../agents/ot/sources/opcua/library-log.ts';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DataType,
  DataValue,
  LocalizedText,
  StatusCodes,
  StatusCode,
  Variant,
  VariantArrayType,
} from 'node-opcua';
import { encodePoint, type PointReading } from '../../../../../agents/points/point.ts';
import { readingFromDataValue } from '../../../../../agents/ot/sources/opcua/data-change.ts';

const SOURCE_TIME = new Date('2026-12-01T10:00:00.000Z');
const SERVER_TIME = new Date('2026-12-01T10:00:00.250Z');
const NOW = Date.parse('2026-12-01T10:00:01.000Z');
const LAST = 20.5;

function change(
  variant: { dataType: DataType; value: unknown; arrayType?: VariantArrayType } | null,
  statusCode: StatusCode = StatusCodes.Good,
  timestamps: { source?: Date | null; server?: Date | null } = { source: SOURCE_TIME, server: SERVER_TIME },
): PointReading {
  const dataValue = new DataValue({
    ...(variant === null ? {} : { value: new Variant(variant) }),
    statusCode,
    sourceTimestamp: timestamps.source ?? null,
    serverTimestamp: timestamps.server ?? null,
  });
  return readingFromDataValue(dataValue, NOW, LAST);
}

const scalar = (dataType: DataType, value: unknown) => ({
  dataType,
  value,
  arrayType: VariantArrayType.Scalar,
});
const array = (dataType: DataType, value: unknown) => ({
  dataType,
  value,
  arrayType: VariantArrayType.Array,
});
const good = (value: PointReading['value']): PointReading => ({
  value,
  quality: 'good',
  sourceTime: SOURCE_TIME.getTime(),
});
const bad = (reason: string, value: PointReading['value'] = LAST): PointReading => ({
  value,
  quality: 'bad',
  reason,
  sourceTime: SOURCE_TIME.getTime(),
});

describe('opcua data changes as points', () => {
  const table: [string, () => PointReading, PointReading][] = [
    ['a Double', () => change(scalar(DataType.Double, 21.25)), good(21.25)],
    ['a Float', () => change(scalar(DataType.Float, 0.5)), good(0.5)],
    ['a Boolean', () => change(scalar(DataType.Boolean, false)), good(false)],
    ['an SByte', () => change(scalar(DataType.SByte, -5)), good(-5)],
    ['a UInt32', () => change(scalar(DataType.UInt32, 4_000_000_000)), good(4_000_000_000)],
    ['an Int64 below zero', () => change(scalar(DataType.Int64, [0xffff_ffff, 0xffff_fffe])), good(-2)],
    ['a UInt64 within 2^53', () => change(scalar(DataType.UInt64, [1, 0])), good(2 ** 32)],
    [
      'a UInt64 beyond 2^53',
      () => change(scalar(DataType.UInt64, [0x0020_0000, 1])),
      bad('UInt64 9007199254740993 is beyond 2^53, which a point cannot hold exactly'),
    ],
    ['a String', () => change(scalar(DataType.String, 'PVC-12')), good('PVC-12')],
    [
      'a LocalizedText',
      () => change(scalar(DataType.LocalizedText, new LocalizedText({ text: 'Auto' }))),
      good('Auto'),
    ],
    [
      'a DateTime, as epoch milliseconds',
      () => change(scalar(DataType.DateTime, SERVER_TIME)),
      good(SERVER_TIME.getTime()),
    ],
    ['a Double array', () => change(array(DataType.Double, new Float64Array([1, 2.5]))), good([1, 2.5])],
    [
      'an Int64 array',
      () =>
        change(
          array(DataType.Int64, [
            [0, 1],
            [0xffff_ffff, 0xffff_ffff],
          ]),
        ),
      good([1, -1]),
    ],
    ['an Int32 array', () => change(array(DataType.Int32, new Int32Array([-1, 7]))), good([-1, 7])],
    [
      'a long array',
      () => change(array(DataType.Double, new Float64Array(65))),
      bad('an array of 65 values, more than 64'),
    ],
    [
      'a String array',
      () => change(array(DataType.String, ['a'])),
      bad('an array of String is outside the point model'),
    ],
    [
      'a long String',
      () => change(scalar(DataType.String, 'x'.repeat(257))),
      bad('a string of 257 bytes, more than 256'),
    ],
    [
      'a ByteString',
      () => change(scalar(DataType.ByteString, Buffer.from('x'))),
      bad('ByteString is outside the point model'),
    ],
    [
      'a Guid',
      () => change(scalar(DataType.Guid, '72962B91-FA75-4AE6-8D28-B404DC7DAF63')),
      bad('Guid is outside the point model'),
    ],
    ['a NaN', () => change(scalar(DataType.Double, Number.NaN)), bad('Double NaN is not a finite number')],
    ['no value with a Good status', () => change(null), bad('the server sent no value')],
    // StatusCodes: the quality, and the status's name as the reason.
    [
      'a Bad status, keeping its value',
      () => change(scalar(DataType.Double, 3), StatusCodes.BadSensorFailure),
      bad('BadSensorFailure', 3),
    ],
    [
      'a Bad status without a value',
      () => change(null, StatusCodes.BadNodeIdUnknown),
      bad('BadNodeIdUnknown'),
    ],
    [
      'an Uncertain status',
      () => change(scalar(DataType.Double, 4), StatusCodes.UncertainSensorNotAccurate),
      {
        value: 4,
        quality: 'uncertain',
        reason: 'UncertainSensorNotAccurate',
        sourceTime: SOURCE_TIME.getTime(),
      },
    ],
    [
      'a Good status with the overflow bit',
      () => change(scalar(DataType.Double, 5), StatusCode.makeStatusCode(StatusCodes.Good, 'Overflow')),
      good(5),
    ],
    // Timestamps: the source's, else the server's, else the agent's clock.
    [
      'no source timestamp',
      () => change(scalar(DataType.Double, 6), StatusCodes.Good, { server: SERVER_TIME }),
      { value: 6, quality: 'good', sourceTime: SERVER_TIME.getTime() },
    ],
    [
      'no timestamp at all',
      () => change(scalar(DataType.Double, 7), StatusCodes.Good, {}),
      { value: 7, quality: 'good', sourceTime: NOW },
    ],
    [
      'a timestamp before 1970',
      () =>
        change(scalar(DataType.Double, 8), StatusCodes.Good, { source: new Date('1601-01-01T00:00:00Z') }),
      { value: 8, quality: 'good', sourceTime: NOW },
    ],
  ];
  for (const [what, make, expected] of table) {
    it(`maps ${what}`, () => {
      const reading = make();
      assert.deepEqual(reading, expected);
      assert.doesNotThrow(() => encodePoint(reading), 'the log takes it');
    });
  }
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  decodePoint,
  encodePoint,
  MAX_REASON_BYTES,
  type PointReading,
} from '../../../agents/points/point.ts';
import {
  decodeStreamRecord,
  encodeGap,
  encodeOrigin,
  encodeReplayEnd,
  encodeReset,
  type StreamRecord,
} from '../../../agents/points/stream-record.ts';
import { DmzError } from '../../../relay/protocol/errors.ts';

const EPOCH_A = '5c1e0f8a9b2d4e67';
const EPOCH_B = '00000000000000e1';
const KEY = '292ac41b7bb88c21';

const codeOf = (run: () => unknown): string => {
  try {
    run();
    return 'none';
  } catch (error) {
    return error instanceof DmzError ? error.code : String(error);
  }
};

const NOW = Date.parse('2026-12-01T10:00:00.000Z');
const reading = (value: PointReading['value'], fields: Partial<PointReading> = {}): PointReading => ({
  value,
  quality: 'good',
  sourceTime: NOW,
  ...fields,
});

function encodeRecord(record: StreamRecord): Uint8Array {
  switch (record.kind) {
    case 'gap':
      return encodeGap(record.to, record.reason);
    case 'replayEnd':
      return encodeReplayEnd(record.more);
    case 'origin':
      return encodeOrigin(record.epochs);
    case 'reset':
      return encodeReset(record.key, record.from, record.reason);
    case 'point':
      return encodePoint(record.reading);
  }
}

describe('agents/points stream records', () => {
  // Every value kind a point uses (0-5) must stay a point; 6 and 7 are the replay's own records.
  const RECORDS: [string, Uint8Array, StreamRecord][] = [
    ['a float point', encodePoint(reading(21.5)), { kind: 'point', reading: reading(21.5) }],
    ['an integer point', encodePoint(reading(-7)), { kind: 'point', reading: reading(-7) }],
    ['a false point', encodePoint(reading(false)), { kind: 'point', reading: reading(false) }],
    [
      'a true point, bad with a reason',
      encodePoint(reading(true, { quality: 'bad', reason: 'timeout' })),
      { kind: 'point', reading: reading(true, { quality: 'bad', reason: 'timeout' }) },
    ],
    ['a string point', encodePoint(reading('recipe-4')), { kind: 'point', reading: reading('recipe-4') }],
    ['an array point', encodePoint(reading([1.5, 2])), { kind: 'point', reading: reading([1.5, 2]) }],
    ['a gap', encodeGap(41, 'retention'), { kind: 'gap', to: 41, reason: 'retention' }],
    ['a gap with an empty reason', encodeGap(1, ''), { kind: 'gap', to: 1, reason: '' }],
    [
      'a gap far along, with a reason of the most bytes',
      encodeGap(2 ** 50, 'é'.repeat(MAX_REASON_BYTES / 2)),
      { kind: 'gap', to: 2 ** 50, reason: 'é'.repeat(MAX_REASON_BYTES / 2) },
    ],
    ['a replay end with more', encodeReplayEnd(true), { kind: 'replayEnd', more: true }],
    ['a replay end without more', encodeReplayEnd(false), { kind: 'replayEnd', more: false }],
    ['an origin of one epoch', encodeOrigin([EPOCH_A]), { kind: 'origin', epochs: [EPOCH_A] }],
    [
      'an origin of the most epochs',
      encodeOrigin(Array.from({ length: 8 }, (_, index) => `${index}`.repeat(16))),
      { kind: 'origin', epochs: Array.from({ length: 8 }, (_, index) => `${index}`.repeat(16)) },
    ],
    [
      'a reset to the start',
      encodeReset(KEY, 1, 'the OT log was re-created'),
      { kind: 'reset', key: KEY, from: 1, reason: 'the OT log was re-created' },
    ],
    [
      'a reset far along, with an empty reason',
      encodeReset(KEY, 2 ** 50, ''),
      { kind: 'reset', key: KEY, from: 2 ** 50, reason: '' },
    ],
  ];
  for (const [name, bytes, expected] of RECORDS) {
    it(`tells ${name} apart`, () => {
      assert.deepEqual(decodeStreamRecord(bytes), expected);
    });
  }

  it('lays a gap and a replay end out as documented', () => {
    assert.deepEqual([...encodeGap(300, 'ab')], [0x07, 0xac, 0x02, 2, 0x61, 0x62]);
    assert.deepEqual([...encodeReplayEnd(true)], [0x06, 1]);
    assert.deepEqual([...encodeReplayEnd(false)], [0x06, 0]);
  });

  it('lays an origin and a reset out as documented, with kinds no point uses', () => {
    assert.deepEqual(
      [...encodeOrigin([EPOCH_A, EPOCH_B])],
      [0x0e, 2, ...Buffer.from(EPOCH_A, 'hex'), ...Buffer.from(EPOCH_B, 'hex')],
    );
    assert.deepEqual(
      [...encodeReset(KEY, 300, 'ab')],
      [0x0f, ...Buffer.from(KEY, 'hex'), 0xac, 0x02, 2, 0x61, 0x62],
    );
    // Value kinds 6 and 7 (bits 0-2): decodePoint refuses them, so no point is ever taken for one.
    assert.equal(
      codeOf(() => decodePoint(encodeOrigin([EPOCH_A]))),
      'AGENT_ERR_POINT_INVALID',
    );
    assert.equal(
      codeOf(() => decodePoint(encodeReset(KEY, 1, 'x'))),
      'AGENT_ERR_POINT_INVALID',
    );
  });

  const REFUSED_ORIGINS_AND_RESETS: [string, () => unknown][] = [
    ['an origin of no epochs', () => encodeOrigin([])],
    ['an origin of 9 epochs', () => encodeOrigin(Array.from({ length: 9 }, (_, i) => `${i}`.repeat(16)))],
    ['an origin naming an epoch twice', () => encodeOrigin([EPOCH_A, EPOCH_A])],
    ['an origin epoch that is not 16 hex digits', () => encodeOrigin(['5c1e0f8a'])],
    ['a reset of a key that is not 16 hex digits', () => encodeReset('press-7/temp', 1, 'x')],
    ['a reset going on at 0', () => encodeReset(KEY, 0, 'x')],
    ['a reset going on at a fraction', () => encodeReset(KEY, 1.5, 'x')],
    ['a reset reason over MAX_REASON_BYTES', () => encodeReset(KEY, 1, 'x'.repeat(MAX_REASON_BYTES + 1))],
  ];
  for (const [name, encode] of REFUSED_ORIGINS_AND_RESETS) {
    it(`refuses to encode ${name} with AGENT_ERR_STREAM_RECORD`, () => {
      assert.equal(codeOf(encode), 'AGENT_ERR_STREAM_RECORD');
    });
  }

  const REFUSED_TO_ENCODE: [string, number, string][] = [
    ['a gap ending at 0', 0, 'retention'],
    ['a gap ending at a fraction', 1.5, 'retention'],
    ['a gap ending beyond 2^53', 2 ** 53, 'retention'],
    ['a gap reason over MAX_REASON_BYTES', 5, 'x'.repeat(MAX_REASON_BYTES + 1)],
  ];
  for (const [name, to, reason] of REFUSED_TO_ENCODE) {
    it(`refuses to encode ${name} with AGENT_ERR_STREAM_RECORD`, () => {
      assert.equal(
        codeOf(() => encodeGap(to, reason)),
        'AGENT_ERR_STREAM_RECORD',
      );
    });
  }

  const gap = [...encodeGap(5, 'retention')];
  const MALFORMED: [string, number[], string][] = [
    ['a gap with trailing bytes', [...gap, 0], 'AGENT_ERR_STREAM_RECORD'],
    ['a gap with flags set', [0x17, ...gap.slice(1)], 'AGENT_ERR_STREAM_RECORD'],
    ['a gap ending at 0', [0x07, 0, 0], 'AGENT_ERR_STREAM_RECORD'],
    ['a gap of its kind byte alone', [0x07], 'AGENT_ERR_STREAM_RECORD'],
    ['a gap whose end varint is cut short', [0x07, 0x80], 'AGENT_ERR_STREAM_RECORD'],
    ['a gap without a reason', [0x07, 5], 'AGENT_ERR_STREAM_RECORD'],
    ['a gap whose reason is cut short', [0x07, 5, 3, 0x61], 'AGENT_ERR_STREAM_RECORD'],
    ['a gap whose reason is not UTF-8', [0x07, 5, 2, 0xc3, 0x28], 'AGENT_ERR_STREAM_RECORD'],
    ['a gap whose reason is too long', [0x07, 5, MAX_REASON_BYTES + 1], 'AGENT_ERR_STREAM_RECORD'],
    [
      'a gap ending beyond 2^53',
      [0x07, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0],
      'AGENT_ERR_STREAM_RECORD',
    ],
    ['a replay end of one byte', [0x06], 'AGENT_ERR_STREAM_RECORD'],
    ['a replay end with a third byte', [0x06, 1, 0], 'AGENT_ERR_STREAM_RECORD'],
    ['a replay end of value 2', [0x06, 2], 'AGENT_ERR_STREAM_RECORD'],
    ['a replay end with flags set', [0x16, 1], 'AGENT_ERR_STREAM_RECORD'],
    ['an origin of no epochs', [0x0e, 0], 'AGENT_ERR_STREAM_RECORD'],
    [
      'an origin of 9 epochs',
      [0x0e, 9, ...Array.from({ length: 72 }, (_, i) => i)],
      'AGENT_ERR_STREAM_RECORD',
    ],
    ['an origin cut short', [0x0e, 2, ...Buffer.from(EPOCH_A, 'hex')], 'AGENT_ERR_STREAM_RECORD'],
    ['an origin with trailing bytes', [...encodeOrigin([EPOCH_A]), 0], 'AGENT_ERR_STREAM_RECORD'],
    [
      'an origin naming an epoch twice',
      [0x0e, 2, ...Buffer.from(EPOCH_A + EPOCH_A, 'hex')],
      'AGENT_ERR_STREAM_RECORD',
    ],
    ['a reset whose key is cut short', [0x0f, 1, 2, 3], 'AGENT_ERR_STREAM_RECORD'],
    ['a reset going on at 0', [0x0f, ...Buffer.from(KEY, 'hex'), 0, 0], 'AGENT_ERR_STREAM_RECORD'],
    ['a reset without a reason', [0x0f, ...Buffer.from(KEY, 'hex'), 1], 'AGENT_ERR_STREAM_RECORD'],
    ['a reset with trailing bytes', [...encodeReset(KEY, 1, 'x'), 0], 'AGENT_ERR_STREAM_RECORD'],
    ['an empty record', [], 'AGENT_ERR_POINT_INVALID'],
    ['a point with unknown flags', [0xc0, 1, 1], 'AGENT_ERR_POINT_INVALID'],
    ['a point cut short', [...encodePoint(reading(21.5))].slice(0, -1), 'AGENT_ERR_POINT_INVALID'],
  ];
  for (const [name, bytes, code] of MALFORMED) {
    it(`refuses ${name} with ${code}`, () => {
      assert.equal(
        codeOf(() => decodeStreamRecord(Uint8Array.from(bytes))),
        code,
      );
    });
  }

  it('turns any bytes into a record or a refusal, and what decodes encodes to the same record', () => {
    const recordish = fc.oneof(
      fc.uint8Array({ maxLength: 40 }),
      // Mostly the replay's own kinds, so the fuzz reaches their decoders.
      fc
        .tuple(fc.constantFrom(0x06, 0x07, 0x0e, 0x0f), fc.uint8Array({ maxLength: 40 }))
        .map(([kind, tail]) => Uint8Array.of(kind, ...tail)),
    );
    fc.assert(
      fc.property(recordish, (bytes) => {
        let record: StreamRecord;
        try {
          record = decodeStreamRecord(bytes);
        } catch (error) {
          assert.ok(error instanceof DmzError, String(error));
          assert.ok(['AGENT_ERR_STREAM_RECORD', 'AGENT_ERR_POINT_INVALID'].includes(error.code), error.code);
          return;
        }
        const again = encodeRecord(record);
        assert.deepEqual(decodeStreamRecord(again), record);
      }),
      { numRuns: 5_000, seed: 6 },
    );
  });
});

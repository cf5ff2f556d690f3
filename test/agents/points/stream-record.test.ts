import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { encodePoint, MAX_REASON_BYTES, type PointReading } from '../../../agents/points/point.ts';
import {
  decodeStreamRecord,
  encodeGap,
  encodeReplayEnd,
  type StreamRecord,
} from '../../../agents/points/stream-record.ts';
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
const reading = (value: PointReading['value'], fields: Partial<PointReading> = {}): PointReading => ({
  value,
  quality: 'good',
  sourceTime: NOW,
  ...fields,
});

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
    ['a gap with flags set', [0x0f, ...gap.slice(1)], 'AGENT_ERR_STREAM_RECORD'],
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
    ['a replay end with flags set', [0x0e, 1], 'AGENT_ERR_STREAM_RECORD'],
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
        .tuple(fc.constantFrom(0x06, 0x07), fc.uint8Array({ maxLength: 40 }))
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
        const again =
          record.kind === 'gap'
            ? encodeGap(record.to, record.reason)
            : record.kind === 'replayEnd'
              ? encodeReplayEnd(record.more)
              : encodePoint(record.reading);
        assert.deepEqual(decodeStreamRecord(again), record);
      }),
      { numRuns: 5_000, seed: 6 },
    );
  });
});

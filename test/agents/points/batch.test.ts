import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { decodePointBatch, encodePointBatch } from '../../../agents/points/batch.ts';
import { DmzError } from '../../../relay/protocol/errors.ts';
import { MAX_POINTS_PER_FRAME } from '../../../relay/protocol/limits.ts';

const codeOf = (run: () => unknown): string => {
  try {
    run();
    return 'none';
  } catch (error) {
    return error instanceof DmzError ? error.code : String(error);
  }
};

describe('agents/points batch', () => {
  it('round-trips any points, across one-, two- and three-byte lengths', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.uint8Array({ maxLength: 200 }),
            fc.integer({ min: 16_000, max: 20_000 }).map((length) => new Uint8Array(length).fill(3)),
          ),
          { minLength: 1, maxLength: 40 },
        ),
        (points) => {
          const decoded = decodePointBatch(encodePointBatch(points), points.length);
          assert.deepEqual(
            decoded.map((point) => [...point]),
            points.map((point) => [...point]),
          );
        },
      ),
      { numRuns: 200 },
    );
  });

  it('lays each point after its LEB128 length', () => {
    const batch = encodePointBatch([Uint8Array.of(7), new Uint8Array(300).fill(1)]);
    assert.deepEqual([...batch.subarray(0, 5)], [1, 7, 0xac, 0x02, 1]);
    assert.equal(batch.byteLength, 2 + 2 + 300);
  });

  const MALFORMED: readonly [string, Uint8Array, number][] = [
    ['fewer points than the count', Uint8Array.of(1, 9), 2],
    ['more points than the count', Uint8Array.of(1, 9, 1, 9), 1],
    ['a length running past the end', Uint8Array.of(5, 1, 2), 1],
    ['a length cut short', Uint8Array.of(0x80), 1],
    ['a length of four bytes', Uint8Array.of(0x80, 0x80, 0x80, 0x01), 1],
    ['an empty batch', new Uint8Array(0), 1],
  ];
  for (const [name, batch, count] of MALFORMED) {
    it(`refuses ${name} with AGENT_ERR_POINT_BATCH`, () => {
      assert.equal(
        codeOf(() => decodePointBatch(batch, count)),
        'AGENT_ERR_POINT_BATCH',
      );
    });
  }

  it('refuses to encode no points or more than a frame may carry', () => {
    assert.equal(
      codeOf(() => encodePointBatch([])),
      'AGENT_ERR_POINT_BATCH',
    );
    const tooMany = Array.from({ length: MAX_POINTS_PER_FRAME + 1 }, () => Uint8Array.of(1));
    assert.equal(
      codeOf(() => encodePointBatch(tooMany)),
      'AGENT_ERR_POINT_BATCH',
    );
  });
});

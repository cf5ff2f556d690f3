import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encode } from '@msgpack/msgpack';
import fc from 'fast-check';
import { decodeFrame } from '../../../relay/protocol/codec.ts';
import { DmzError } from '../../../relay/protocol/errors.ts';
import { FRAME_KIND } from '../../../relay/protocol/frames.ts';
import { checkNesting } from '../../../relay/protocol/msgpack-nesting.ts';

/** Containers deep: a scalar is 0, `[1]` is 1, `{a: [1]}` is 2. */
function depthOf(value: unknown): number {
  if (value instanceof Uint8Array || value === null || typeof value !== 'object') return 0;
  const children = Array.isArray(value) ? value : Object.values(value);
  return 1 + Math.max(0, ...children.map(depthOf));
}

const refuses = (bytes: Uint8Array, maxDepth: number): boolean => {
  try {
    checkNesting(bytes, maxDepth);
    return false;
  } catch (error) {
    assert.ok(error instanceof DmzError && error.code === 'RELAY_ERR_MALFORMED_FRAME', String(error));
    return true;
  }
};

const values = fc.oneof(
  fc.jsonValue({ maxDepth: 5 }),
  fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 5 }),
  fc.dictionary(
    fc.string(),
    fc.array(fc.oneof(fc.uint8Array({ maxLength: 70_000 }), fc.integer(), fc.double())),
    {
      maxKeys: 3,
    },
  ),
);

describe('msgpack nesting pre-scan', () => {
  it('refuses exactly the values nested deeper than the limit', () => {
    fc.assert(
      fc.property(values, fc.integer({ min: 0, max: 4 }), (value, maxDepth) => {
        assert.equal(refuses(encode(value), maxDepth), depthOf(value) > maxDepth);
      }),
      { numRuns: 2000 },
    );
  });

  it('answers a truncated or corrupted body with a DmzError, never another exception', () => {
    fc.assert(
      fc.property(values, fc.nat(), fc.nat(255), (value, cut, flip) => {
        const bytes = encode(value);
        refuses(bytes.subarray(0, cut % (bytes.byteLength + 1)), 8);
        const corrupted = Uint8Array.from(bytes);
        if (corrupted.byteLength > 0) corrupted[cut % corrupted.byteLength] = flip;
        refuses(corrupted, 8);
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses a frame of deeply nested arrays before the decoder builds any of them', () => {
    const depth = 500_000;
    // ...then `points:` followed by arrays of one array of one array...
    const frame = new Uint8Array([
      FRAME_KIND.publish,
      0x83,
      0xa5,
      ...Buffer.from('topic'),
      0xa1,
      0x61,
      0xa3,
      ...Buffer.from('seq'),
      0x00,
      0xa6,
      ...Buffer.from('points'),
      ...new Uint8Array(depth).fill(0x91),
      0xc0,
    ]);
    assert.throws(() => decodeFrame(frame, 'toRelay'), {
      code: 'RELAY_ERR_MALFORMED_FRAME',
      message: /nests deeper/,
    });
  });
});

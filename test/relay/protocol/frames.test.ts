import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeFrame, encodeFrame } from '../../../relay/protocol/codec.ts';
import { DmzError } from '../../../relay/protocol/errors.ts';
import type { Frame } from '../../../relay/protocol/frames.ts';
import { MAX_RESUME_BYTES } from '../../../relay/protocol/limits.ts';

const roundTrip = (frame: Frame, direction: 'toRelay' | 'toAgent'): Frame =>
  decodeFrame(encodeFrame(frame), direction);

function assertInvalid(frame: Frame, direction: 'toRelay' | 'toAgent', at: string): void {
  assert.throws(
    () => roundTrip(frame, direction),
    (error: unknown) => {
      assert.ok(error instanceof DmzError);
      assert.equal(error.code, 'RELAY_ERR_INVALID_FRAME');
      assert.ok(error.message.includes(at), `"${error.message}" does not name ${at}`);
      assert.match(error.message, /^[\x20-\x7e]*$/, 'the message echoes unprintable input');
      return true;
    },
  );
}

/** Peer names travel in frames but must still be what an identity can be: a lower-case DNS label. */
const NAMES: readonly [name: string, valid: boolean][] = [
  ['press-7', true],
  ['a', true],
  ['0', true],
  ['x'.repeat(63), true],
  ['x'.repeat(64), false],
  ['', false],
  ['Press-7', false],
  ['-press', false],
  ['press-', false],
  ['press_7', false],
  ['press.7', false],
  ['press 7', false],
  ['ghost\n{"event":"forged"}', false],
  ['ghost\u001b[2J', false],
  ['caf\u00e9', false],
];

describe('frames: agent names', () => {
  for (const [name, valid] of NAMES) {
    it(`${valid ? 'accepts' : 'refuses'} peer name ${JSON.stringify(name)} in both directions`, () => {
      const toRelay: Frame = { type: 'sessionOpen', ref: 1, peer: name, filter: '#' };
      const offer: Frame = { type: 'sessionOpen', session: 1, peer: name, filter: '#', leaseMs: 1000 };
      const accept: Frame = {
        type: 'sessionAccept',
        ref: 1,
        session: 1,
        peer: name,
        filter: '#',
        leaseMs: 1000,
      };
      if (valid) {
        assert.deepEqual(roundTrip(toRelay, 'toRelay'), toRelay);
        assert.deepEqual(roundTrip(offer, 'toAgent'), offer);
        assert.deepEqual(roundTrip(accept, 'toAgent'), accept);
      } else {
        assertInvalid(toRelay, 'toRelay', '/peer');
        assertInvalid(offer, 'toAgent', '/peer');
        assertInvalid(accept, 'toAgent', '/peer');
      }
    });
  }
});

describe('frames: resume cursors', () => {
  const subscribeToRelay = (bytes: number): Frame => ({
    type: 'subscribe',
    ref: 1,
    session: 1,
    filter: 'a/#',
    resume: new Uint8Array(bytes),
  });
  const subscribeToAgent = (bytes: number): Frame => ({
    type: 'subscribe',
    session: 1,
    filter: 'a/#',
    resume: new Uint8Array(bytes),
  });

  it('carries a cursor of MAX_RESUME_BYTES (64 KiB) both ways', () => {
    assert.equal(MAX_RESUME_BYTES, 64 * 1024);
    for (const [frame, direction] of [
      [subscribeToRelay(MAX_RESUME_BYTES), 'toRelay'],
      [subscribeToAgent(MAX_RESUME_BYTES), 'toAgent'],
    ] as const) {
      const decoded = roundTrip(frame, direction);
      assert.ok(decoded.type === 'subscribe');
      assert.equal(decoded.resume?.byteLength, MAX_RESUME_BYTES);
    }
  });

  const tooLarge: readonly [name: string, bytes: number][] = [
    ['one byte over', MAX_RESUME_BYTES + 1],
    ['of twice the limit', 2 * MAX_RESUME_BYTES],
  ];
  for (const [name, bytes] of tooLarge) {
    it(`refuses a cursor ${name} both ways`, () => {
      assertInvalid(subscribeToRelay(bytes), 'toRelay', '/resume');
      assertInvalid(subscribeToAgent(bytes), 'toAgent', '/resume');
    });
  }
});

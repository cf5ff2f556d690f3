import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { decodeFrame, deliveryFrames, encodeFrame } from '../../../relay/protocol/codec.ts';
import { DmzError, type ErrorCode } from '../../../relay/protocol/errors.ts';
import { FRAME_KIND, type ToAgentFrame, type ToRelayFrame } from '../../../relay/protocol/frames.ts';
import { MAX_POINTS_PER_FRAME } from '../../../relay/protocol/limits.ts';
import { rawFrame } from '../../support/raw-frame.ts';

function codeOf(action: () => unknown): ErrorCode {
  try {
    action();
  } catch (error) {
    assert.ok(error instanceof DmzError, `not a DmzError: ${String(error)}`);
    return error.code;
  }
  assert.fail('decoded without error');
}

const point = new Uint8Array([1, 2, 3]);

describe('codec', () => {
  const toRelay: ToRelayFrame[] = [
    { type: 'hello', software: 'dmz-agent 0.1' },
    { type: 'sessionOpen', ref: 1, peer: 'press-7', filter: 'press-7/#' },
    { type: 'sessionAccept', session: 9 },
    { type: 'sessionClose', session: 9, code: 'RELAY_ERR_SESSION_CLOSED', message: 'bye' },
    { type: 'subscribe', ref: 2, session: 9, filter: 'press-7/+/t', resume: new Uint8Array([7]) },
    { type: 'unsubscribe', ref: 3, session: 9, filter: 'press-7/+/t' },
    { type: 'publish', topic: 'press-7/t', seq: Number.MAX_SAFE_INTEGER, count: 2, points: point },
    { type: 'publish', topic: 'press-7/t', seq: 1, count: 1, points: point, session: 3 },
    { type: 'request', session: 9, id: 0xffff_ffff, topic: 'press-7/sp', timeoutMs: 1000, payload: point },
    { type: 'response', session: 9, id: 4, error: { code: 'RELAY_ERR_TIMEOUT', message: 'late' } },
    { type: 'ping', nonce: 5 },
    { type: 'pong', nonce: 5 },
  ];
  for (const frame of toRelay) {
    it(`round-trips ${frame.type} to the relay`, () => {
      assert.deepEqual(decodeFrame(encodeFrame(frame), 'toRelay'), frame);
    });
  }
  const toAgent: ToAgentFrame[] = [
    {
      type: 'welcome',
      role: 'it',
      name: 'historian',
      leaseMs: 30_000,
      pingIntervalMs: 10_000,
      maxFrameBytes: 65536,
    },
    { type: 'deliver', session: 1, topic: 'a/b', seq: 0, count: 1, points: point },
    { type: 'dropped', session: 1, points: 12 },
    { type: 'error', ref: 3, code: 'RELAY_ERR_FORBIDDEN', message: 'no' },
    { type: 'ack', ref: 1 },
  ];
  for (const frame of toAgent) {
    it(`round-trips ${frame.type} to an agent`, () => {
      assert.deepEqual(decodeFrame(encodeFrame(frame), 'toAgent'), frame);
    });
  }

  const refused: [string, Uint8Array, ErrorCode][] = [
    ['an empty frame', new Uint8Array(), 'RELAY_ERR_MALFORMED_FRAME'],
    ['an unknown kind byte', rawFrame(0xee, {}), 'RELAY_ERR_UNKNOWN_FRAME'],
    ['a relay-to-agent kind sent to the relay', rawFrame(FRAME_KIND.deliver, {}), 'RELAY_ERR_UNKNOWN_FRAME'],
    ['a stream open without its fields', rawFrame(FRAME_KIND.streamOpen, {}), 'RELAY_ERR_INVALID_FRAME'],
    [
      'truncated MessagePack',
      rawFrame(FRAME_KIND.ping, { nonce: 1 }).subarray(0, 4),
      'RELAY_ERR_MALFORMED_FRAME',
    ],
    [
      'trailing bytes',
      new Uint8Array([...rawFrame(FRAME_KIND.ping, { nonce: 1 }), 0xc0]),
      'RELAY_ERR_MALFORMED_FRAME',
    ],
    [
      'a __proto__ key',
      new Uint8Array([FRAME_KIND.ping, 0x81, 0xa9, ...Buffer.from('__proto__'), 0x01]),
      'RELAY_ERR_MALFORMED_FRAME',
    ],
    ['a body that is not a map', rawFrame(FRAME_KIND.ping, [1]), 'RELAY_ERR_INVALID_FRAME'],
    ['a missing field', rawFrame(FRAME_KIND.ping, {}), 'RELAY_ERR_INVALID_FRAME'],
    ['an extra field', rawFrame(FRAME_KIND.ping, { nonce: 1, admin: true }), 'RELAY_ERR_INVALID_FRAME'],
    ['a field of the wrong type', rawFrame(FRAME_KIND.ping, { nonce: '1' }), 'RELAY_ERR_INVALID_FRAME'],
    ['a negative id', rawFrame(FRAME_KIND.ping, { nonce: -1 }), 'RELAY_ERR_INVALID_FRAME'],
    ['an id above u32', rawFrame(FRAME_KIND.ping, { nonce: 2 ** 32 }), 'RELAY_ERR_INVALID_FRAME'],
    [
      'a fractional sequence',
      rawFrame(FRAME_KIND.publish, { topic: 'a', seq: 1.5, count: 1, points: point }),
      'RELAY_ERR_INVALID_FRAME',
    ],
    [
      'points that are a string',
      rawFrame(FRAME_KIND.publish, { topic: 'a', seq: 1, count: 1, points: 'x' }),
      'RELAY_ERR_INVALID_FRAME',
    ],
    [
      'points as an array (protocol v1)',
      rawFrame(FRAME_KIND.publish, { topic: 'a', seq: 1, points: [point] }),
      'RELAY_ERR_INVALID_FRAME',
    ],
    [
      'an empty points batch',
      rawFrame(FRAME_KIND.publish, { topic: 'a', seq: 1, count: 1, points: new Uint8Array(0) }),
      'RELAY_ERR_INVALID_FRAME',
    ],
    [
      'a batch without its count',
      rawFrame(FRAME_KIND.publish, { topic: 'a', seq: 1, points: point }),
      'RELAY_ERR_INVALID_FRAME',
    ],
    [
      'a count of zero',
      rawFrame(FRAME_KIND.publish, { topic: 'a', seq: 1, count: 0, points: point }),
      'RELAY_ERR_INVALID_FRAME',
    ],
    [
      'a count above what a batch may hold',
      rawFrame(FRAME_KIND.publish, { topic: 'a', seq: 1, count: MAX_POINTS_PER_FRAME + 1, points: point }),
      'RELAY_ERR_INVALID_FRAME',
    ],
    [
      'a fractional count',
      rawFrame(FRAME_KIND.publish, { topic: 'a', seq: 1, count: 1.5, points: point }),
      'RELAY_ERR_INVALID_FRAME',
    ],
    [
      'a topic longer than 256 bytes',
      rawFrame(FRAME_KIND.publish, { topic: 'a'.repeat(257), seq: 1, count: 1, points: point }),
      'RELAY_ERR_INVALID_FRAME',
    ],
    [
      'a request deadline beyond a minute',
      rawFrame(FRAME_KIND.request, { session: 1, id: 1, topic: 'a', timeoutMs: 60_001, payload: point }),
      'RELAY_ERR_INVALID_FRAME',
    ],
    [
      'a MessagePack extension value',
      new Uint8Array([FRAME_KIND.ping, 0x81, 0xa5, ...Buffer.from('nonce'), 0xd4, 0x01, 0x00]),
      'RELAY_ERR_MALFORMED_FRAME',
    ],
  ];
  for (const [name, bytes, code] of refused) {
    it(`refuses ${name} with ${code}`, () => {
      assert.equal(
        codeOf(() => decodeFrame(bytes, 'toRelay')),
        code,
      );
    });
  }

  it('refuses a frame over the size cap before parsing it', () => {
    const frame = encodeFrame({
      type: 'publish',
      topic: 'a',
      seq: 0,
      count: 1,
      points: new Uint8Array(2048),
    });
    assert.equal(
      codeOf(() => decodeFrame(frame, 'toRelay', 1024)),
      'RELAY_ERR_FRAME_TOO_LARGE',
    );
  });

  it('forwards the points batch of one publish to every session as it came, each frame a deliver of its own', () => {
    const topic = fc.stringMatching(/^[a-z0-9]{1,8}(\/[a-z0-9]{1,8}){0,3}$/);
    fc.assert(
      fc.property(
        topic,
        fc.nat({ max: Number.MAX_SAFE_INTEGER }),
        fc.integer({ min: 1, max: MAX_POINTS_PER_FRAME }),
        // Across the bin 8, bin 16 and bin 32 length headers.
        fc.oneof(
          fc.uint8Array({ minLength: 1, maxLength: 300 }),
          fc.integer({ min: 0x1_0000, max: 0x1_2000 }).map((length) => new Uint8Array(length).fill(7)),
        ),
        fc.uniqueArray(fc.nat({ max: 0xffff_ffff }), { minLength: 1, maxLength: 5 }),
        (topicName, seq, count, points, sessions) => {
          const frames = deliveryFrames({ topic: topicName, seq, count, points });
          for (const session of sessions) {
            const expected = { type: 'deliver', session, topic: topicName, seq, count, points } as const;
            const [head, batch] = frames(session);
            // The batch is the publisher's own bytes, shared: not a copy.
            assert.equal(batch, points);
            assert.deepEqual(decodeFrame(Uint8Array.from(Buffer.concat([head, batch])), 'toAgent'), expected);
            assert.deepEqual(decodeFrame(encodeFrame(expected), 'toAgent'), expected);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('turns any byte string into a frame or a DmzError, never another exception', () => {
    const kinds = Object.values(FRAME_KIND);
    const arbitraryFrame = fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      fc
        .tuple(fc.constantFrom(...kinds), fc.uint8Array({ maxLength: 64 }))
        .map(([kind, body]) => new Uint8Array([kind, ...body])),
      fc
        .tuple(
          fc.constantFrom(...kinds),
          fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 6 }),
        )
        .map(([kind, body]) => rawFrame(kind, body)),
    );
    fc.assert(
      fc.property(arbitraryFrame, (bytes) => {
        for (const direction of ['toRelay', 'toAgent'] as const) {
          try {
            decodeFrame(bytes, direction);
          } catch (error) {
            if (!(error instanceof DmzError)) throw error;
          }
        }
      }),
      { numRuns: 3000 },
    );
  });
});

describe('codec - the limits a welcome announces', () => {
  const welcome = {
    role: 'ot',
    name: 'press-7',
    leaseMs: 30_000,
    pingIntervalMs: 10_000,
    maxFrameBytes: 65536,
  };
  const limits = {
    messagesPerSecond: 50_000,
    bytesPerSecond: 64 * 1024 * 1024,
    maxSessionsPerAgent: 64,
    maxSessionsPerPair: 8,
    maxSubscriptionsPerAgent: 256,
    maxPendingRequestsPerAgent: 256,
  };

  it('round-trips a welcome with every limit, and one without any (a relay older than the announcement)', () => {
    for (const frame of [
      { type: 'welcome', ...welcome, limits },
      { type: 'welcome', ...welcome },
    ] as const) {
      assert.deepEqual(decodeFrame(encodeFrame(frame as ToAgentFrame), 'toAgent'), frame);
    }
  });

  it('takes limits this agent does not know yet (a newer relay), and keeps the ones it knows', () => {
    const decoded = decodeFrame(
      rawFrame(FRAME_KIND.welcome, { ...welcome, limits: { ...limits, maxTunnelStreams: 16 } }),
      'toAgent',
    );
    assert.equal(decoded.type === 'welcome' ? decoded.limits?.maxSessionsPerPair : undefined, 8);
  });

  const REFUSED: [string, Record<string, unknown>][] = [
    ['a limit of zero', { ...welcome, limits: { messagesPerSecond: 0 } }],
    ['a fractional limit', { ...welcome, limits: { bytesPerSecond: 1.5 } }],
    ['a limit that is a string', { ...welcome, limits: { maxSessionsPerPair: '8' } }],
    ['limits that are not a map', { ...welcome, limits: [8] }],
    ['an unknown field beside the limits', { ...welcome, limits, extra: 1 }],
  ];
  for (const [name, body] of REFUSED) {
    it(`refuses a welcome with ${name}`, () => {
      assert.equal(
        codeOf(() => decodeFrame(rawFrame(FRAME_KIND.welcome, body), 'toAgent')),
        'RELAY_ERR_INVALID_FRAME',
      );
    });
  }
});

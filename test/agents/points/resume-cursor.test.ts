import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  decodeResumeCursor,
  encodeResumeCursor,
  MAX_CURSOR_EPOCHS,
  MIN_REPLAY_WINDOW,
  streamKey,
} from '../../../agents/points/resume-cursor.ts';
import { DmzError } from '../../../relay/protocol/errors.ts';
import { MAX_RESUME_BYTES } from '../../../relay/protocol/limits.ts';

const codeOf = (run: () => unknown): string => {
  try {
    run();
    return 'none';
  } catch (error) {
    return error instanceof DmzError ? error.code : String(error);
  }
};

/** Positions keyed by topic, as the decoder keys them (by stream key). */
const byKey = (positions: ReadonlyMap<string, number>) =>
  new Map([...positions].map(([topic, seq]) => [streamKey(topic), seq]));

/** `count` topics of one plant, each holding seq 1 (a one-byte varint). */
const topics = (count: number) =>
  new Map(Array.from({ length: count }, (_, index) => [`press-7/line1/p${index}`, 1]));

/** Version 2, earliest for unseen streams, window 4096 (two varint bytes), no log epochs. */
const HEADER = [2, 0, 0x80, 0x20, 0];
/** Version 1: the same without the epochs byte. */
const V1_HEADER = [1, 0, 0x80, 0x20];
const EPOCHS = ['5c1e0f8a9b2d4e67', '00000000000000e1'];
const EPOCH_BYTES = [...Buffer.from(EPOCHS.join(''), 'hex')];
/** `count` distinct epoch ids. */
const epochs = (count: number) =>
  Array.from({ length: count }, (_, index) => index.toString(16).padStart(16, '0'));
/** SHA-256("press-7/line1/temp"), its first 8 bytes (sha256sum): fixed by the format, shared by both roles. */
const TEMP_KEY = '292ac41b7bb88c21';
const KEY = [...Buffer.from(TEMP_KEY, 'hex')];

describe('agents/points resume cursor', () => {
  it('round-trips a window and per-stream positions', () => {
    const positions = new Map([
      ['press-7/line1/temp', 0],
      ['press-7/line1/count', 127],
      ['press-7/line1/running', 2 ** 40],
      ['press-7/line2/level', Number.MAX_SAFE_INTEGER],
    ]);
    const cursor = decodeResumeCursor(encodeResumeCursor(65_536, positions, EPOCHS));
    assert.equal(cursor.window, 65_536);
    assert.deepEqual(cursor.epochs, EPOCHS);
    assert.deepEqual(cursor.positions, byKey(positions));
  });

  it('lays the log epochs out after the window, newest first, and names none by default', () => {
    const bytes = encodeResumeCursor(MIN_REPLAY_WINDOW, new Map([['press-7/line1/temp', 300]]), EPOCHS);
    assert.deepEqual([...bytes], [...HEADER.slice(0, -1), 2, ...EPOCH_BYTES, ...KEY, 0xac, 0x02]);
    assert.deepEqual(decodeResumeCursor(encodeResumeCursor(MIN_REPLAY_WINDOW, new Map())).epochs, []);
  });

  it('still decodes a version 1 cursor, as one that names no log epochs', () => {
    const cursor = decodeResumeCursor(Uint8Array.from([...V1_HEADER, ...KEY, 0xac, 0x02]));
    assert.deepEqual(cursor, {
      window: MIN_REPLAY_WINDOW,
      epochs: [],
      positions: new Map([[TEMP_KEY, 300]]),
    });
  });

  it('round-trips any cursor of the model', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: MIN_REPLAY_WINDOW, max: 1_048_576 }),
        fc.uniqueArray(fc.tuple(fc.stringMatching(/^[a-z0-9/]{1,40}$/), fc.nat()), {
          selector: ([topic]) => topic,
          maxLength: 50,
        }),
        fc.integer({ min: 0, max: MAX_CURSOR_EPOCHS }),
        (window, entries, epochCount) => {
          const positions = new Map(entries);
          const cursor = decodeResumeCursor(encodeResumeCursor(window, positions, epochs(epochCount)));
          assert.equal(cursor.window, window);
          assert.deepEqual(cursor.epochs, epochs(epochCount));
          assert.deepEqual(cursor.positions, byKey(positions));
        },
      ),
      { numRuns: 300, seed: 6 },
    );
  });

  it('names a stream by the first 8 bytes of SHA-256 of its topic', () => {
    assert.equal(streamKey('press-7/line1/temp'), TEMP_KEY);
    assert.notEqual(streamKey('press-7/line1/temp'), streamKey('press-7/line1/temp2'));
    const bytes = encodeResumeCursor(MIN_REPLAY_WINDOW, new Map([['press-7/line1/temp', 300]]));
    assert.deepEqual([...bytes], [...HEADER, ...KEY, 0xac, 0x02]);
  });

  it('carries as many streams as MAX_RESUME_BYTES holds with the most epochs, and refuses one more clearly', () => {
    const perStream = 8 + 1;
    const header = HEADER.length + MAX_CURSOR_EPOCHS * 8;
    const fit = Math.floor((MAX_RESUME_BYTES - header) / perStream);
    const full = encodeResumeCursor(MIN_REPLAY_WINDOW, topics(fit), epochs(MAX_CURSOR_EPOCHS));
    assert.equal(full.byteLength, header + fit * perStream);
    assert.ok(full.byteLength <= MAX_RESUME_BYTES);
    assert.equal(decodeResumeCursor(full).positions.size, fit);

    assert.throws(
      () => encodeResumeCursor(MIN_REPLAY_WINDOW, topics(fit + 1), epochs(MAX_CURSOR_EPOCHS)),
      (error: unknown) =>
        error instanceof DmzError &&
        error.code === 'AGENT_ERR_RESUME_CURSOR' &&
        error.message.includes(`${fit + 1} streams`) &&
        /split the filter/.test(error.message),
    );
  });

  const NONE = new Map<string, number>();
  const REFUSED_TO_ENCODE: [string, number, Map<string, number>, string[]][] = [
    ['a window below one frame', MIN_REPLAY_WINDOW - 1, NONE, []],
    ['a fractional window', MIN_REPLAY_WINDOW + 0.5, NONE, []],
    ['a negative position', MIN_REPLAY_WINDOW, new Map([['press-7/a', -1]]), []],
    ['a fractional position', MIN_REPLAY_WINDOW, new Map([['press-7/a', 1.5]]), []],
    ['a position beyond 2^53', MIN_REPLAY_WINDOW, new Map([['press-7/a', 2 ** 53]]), []],
    ['more than MAX_CURSOR_EPOCHS epochs', MIN_REPLAY_WINDOW, NONE, epochs(MAX_CURSOR_EPOCHS + 1)],
    ['an epoch twice', MIN_REPLAY_WINDOW, NONE, [EPOCHS[0]!, EPOCHS[0]!]],
    ['an epoch that is not 16 hex digits', MIN_REPLAY_WINDOW, NONE, ['5C1E0F8A9B2D4E67']],
  ];
  for (const [name, window, positions, named] of REFUSED_TO_ENCODE) {
    it(`refuses to encode ${name} with AGENT_ERR_RESUME_CURSOR`, () => {
      assert.equal(
        codeOf(() => encodeResumeCursor(window, positions, named)),
        'AGENT_ERR_RESUME_CURSOR',
      );
    });
  }

  const MALFORMED: [string, number[], RegExp][] = [
    ['no bytes', [], /cut short/],
    ['a version byte alone', [1], /cut short/],
    ['version 0', [0, 0, 0x80, 0x20], /version/],
    ['version 3', [3, 0, 0x80, 0x20, 0], /version/],
    ['an unknown start for unseen streams', [2, 1, 0x80, 0x20, 0], /unknown start/],
    ['version 2 without its epochs byte', [2, 0, 0x80, 0x20], /cut short/],
    ['more than MAX_CURSOR_EPOCHS epochs', [2, 0, 0x80, 0x20, MAX_CURSOR_EPOCHS + 1], /log epochs/],
    ['an epoch cut short', [2, 0, 0x80, 0x20, 2, ...EPOCH_BYTES.slice(0, 12)], /cut short/],
    [
      'an epoch twice',
      [2, 0, 0x80, 0x20, 2, ...EPOCH_BYTES.slice(0, 8), ...EPOCH_BYTES.slice(0, 8)],
      /twice/,
    ],
    ['no window', [1, 0], /cut short/],
    ['a window varint cut short', [1, 0, 0x80], /cut short/],
    ['a window below MIN_REPLAY_WINDOW', [2, 0, 0xff, 0x1f, 0], /window too small/],
    ['a window of 0', [1, 0, 0], /window too small/],
    ['a window varint that never ends', [1, 0, ...Array.from({ length: 9 }, () => 0xff)], /varint too long/],
    ['a truncated stream key', [...HEADER, ...KEY.slice(0, 5)], /cut short/],
    ['a key without a position', [...HEADER, ...KEY], /cut short/],
    ['a position varint cut short', [...HEADER, ...KEY, 0x80], /cut short/],
    [
      'a position beyond 2^53',
      [...HEADER, ...KEY, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
      /too large/,
    ],
    ['a stream twice', [...HEADER, ...KEY, 1, ...KEY, 2], /appears twice/],
  ];
  for (const [name, bytes, detail] of MALFORMED) {
    it(`refuses to decode ${name} with AGENT_ERR_RESUME_CURSOR`, () => {
      assert.throws(
        () => decodeResumeCursor(Uint8Array.from(bytes)),
        (error: unknown) => {
          assert.ok(error instanceof DmzError, String(error));
          assert.equal(error.code, 'AGENT_ERR_RESUME_CURSOR');
          assert.match(error.message, detail);
          return true;
        },
      );
    });
  }

  it('turns any bytes into a cursor or AGENT_ERR_RESUME_CURSOR, never another exception', () => {
    const cursorish = fc.oneof(
      fc.uint8Array({ maxLength: 60 }),
      // Mostly well-formed headers, so the fuzz reaches the stream entries.
      fc.uint8Array({ maxLength: 60 }).map((tail) => Uint8Array.of(...HEADER, ...tail)),
      fc.uint8Array({ maxLength: 60 }).map((tail) => Uint8Array.of(...V1_HEADER, ...tail)),
      fc.uint8Array({ maxLength: 60 }).map((tail) => Uint8Array.of(...HEADER.slice(0, -1), 2, ...tail)),
    );
    fc.assert(
      fc.property(cursorish, (bytes) => {
        let cursor;
        try {
          cursor = decodeResumeCursor(bytes);
        } catch (error) {
          assert.ok(error instanceof DmzError, String(error));
          assert.equal(error.code, 'AGENT_ERR_RESUME_CURSOR');
          return;
        }
        assert.ok(Number.isSafeInteger(cursor.window) && cursor.window >= MIN_REPLAY_WINDOW);
        assert.ok(cursor.epochs.length <= MAX_CURSOR_EPOCHS);
        for (const seq of cursor.positions.values()) assert.ok(Number.isSafeInteger(seq) && seq >= 0);
      }),
      { numRuns: 3_000, seed: 6 },
    );
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatDuration, parseDuration } from '../../pki/duration.ts';

describe('pki duration', () => {
  const PARSED: [string, number | undefined, number | undefined][] = [
    // text, whole-second units only, with milliseconds allowed
    ['90s', 90_000, 90_000],
    ['30m', 1_800_000, 1_800_000],
    ['12h', 43_200_000, 43_200_000],
    ['7d', 604_800_000, 604_800_000],
    ['100ms', undefined, 100],
    ['0s', undefined, undefined],
    ['1.5s', undefined, undefined],
    ['1h30m', undefined, undefined],
    ['100', undefined, undefined],
    ['5 s', undefined, undefined],
  ];
  for (const [text, seconds, milliseconds] of PARSED) {
    it(`reads ${JSON.stringify(text)} as ${String(seconds)} (${String(milliseconds)} with milliseconds)`, () => {
      assert.equal(parseDuration(text), seconds);
      assert.equal(parseDuration(text, { milliseconds: true }), milliseconds);
    });
  }

  it('writes the largest whole unit, milliseconds below a second', () => {
    assert.deepEqual([86_400_000, 7_200_000, 90_000, 60_000, 1_000, 1_500, 100, 1].map(formatDuration), [
      '1d',
      '2h',
      '90s',
      '1m',
      '1s',
      '1500ms',
      '100ms',
      '1ms',
    ]);
  });
});

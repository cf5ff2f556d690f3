import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RECONNECT_BASE_MS, RECONNECT_CAP_MS, reconnectDelayMs } from '../../../agents/link/backoff.ts';

describe('agents/link/backoff - exponential backoff with full jitter', () => {
  it('spreads 1000 delays at one attempt over [0, ceiling): every tenth of the range is used', () => {
    const attempt = 3;
    const ceiling = RECONNECT_BASE_MS * 2 ** attempt; // 4 s, below the cap
    const deciles = new Array<number>(10).fill(0);
    for (let n = 0; n < 1000; n++) {
      const delay = reconnectDelayMs(attempt);
      assert.ok(delay >= 0 && delay < ceiling, `${delay} ms is outside [0, ${ceiling})`);
      deciles[Math.floor((delay / ceiling) * 10)]!++;
    }
    // Uniform: about 100 in each; fewer than 50 in one would be a one-in-a-billion draw.
    assert.ok(
      deciles.every((count) => count >= 50),
      `deciles ${deciles.join(', ')}`,
    );
  });

  it('doubles the ceiling with each attempt until the cap', () => {
    const ceilings = [0, 1, 2, 3, 4, 5, 6, 7, 8].map(
      (attempt) => reconnectDelayMs(attempt, undefined, () => 0.5) * 2,
    );
    assert.deepEqual(ceilings, [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]);
    assert.equal(
      reconnectDelayMs(2, { baseMs: 100, capMs: 300 }, () => 0.5),
      150,
    );
  });

  it('never exceeds the cap and stays a finite number for huge attempts', () => {
    const almostOne = () => 1 - Number.EPSILON;
    for (const attempt of [10, 100, 1_023, 1_024, 1e6, Number.MAX_SAFE_INTEGER, Number.POSITIVE_INFINITY]) {
      const delay = reconnectDelayMs(attempt, undefined, almostOne);
      assert.ok(Number.isFinite(delay) && delay < RECONNECT_CAP_MS, `attempt ${attempt}: ${delay}`);
      assert.equal(reconnectDelayMs(attempt, { baseMs: 0, capMs: 1_000 }, almostOne), 0, 'a zero base');
    }
  });

  it('refuses an attempt number that is negative or not a number', () => {
    for (const attempt of [-1, Number.NaN]) assert.throws(() => reconnectDelayMs(attempt), RangeError);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  BURST_SECONDS,
  MIN_PACED_FRAME_BYTES,
  RATE_SHARE,
  REFUSAL_PAUSE_SECONDS,
  SendBudget,
} from '../../../agents/link/send-budget.ts';
import { busiestSecond } from '../../support/rate-windows.ts';
import { waitFor } from '../../support/wait.ts';

const MAX_FRAME = 1024 * 1024;

/** A budget on a clock the test moves. */
function manual(limits: { messagesPerSecond?: number; bytesPerSecond?: number }) {
  let now = 0;
  const budget = new SendBudget({ maxFrameBytes: MAX_FRAME, limits }, () => now);
  return {
    budget,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

describe('agents/link send budget', () => {
  it('is unlimited when the relay announced no rates (a relay older than the announcement)', async () => {
    const budget = new SendBudget({ maxFrameBytes: MAX_FRAME });
    for (let index = 0; index < 100_000; index++) budget.spend(MAX_FRAME);
    assert.equal(budget.limited, false);
    assert.equal(budget.allows(1_000_000, Number.MAX_SAFE_INTEGER), true);
    assert.equal(budget.frameBytes, MAX_FRAME);
    assert.equal(budget.waitMs(), 0);
    await budget.whenRoom();
  });

  it('keeps a sender that sends whenever it may under the relay message rate in every window', () => {
    const limit = 500;
    const { budget, advance } = manual({ messagesPerSecond: limit });
    const times: number[] = [];
    for (let ms = 0; ms < 10_000; ms++, advance(1)) {
      while (budget.allows(1, 100)) {
        budget.spend(100);
        times.push(ms);
      }
    }
    const { frames } = busiestSecond(
      times,
      times.map(() => 100),
    );
    assert.ok(frames < limit, `${frames} frames in one second against a limit of ${limit}`);
    // Nor far below it: the budget is the rate share plus its burst.
    assert.ok(frames >= limit * RATE_SHARE, `${frames} frames: the budget wastes the rate`);
    assert.ok(times.length >= 10 * limit * RATE_SHARE * 0.99, `${times.length} frames in 10 s`);
  });

  it('keeps frames under the byte rate, and cuts frames to a quarter of its burst', () => {
    const limit = 256 * 1024;
    const { budget, advance } = manual({ bytesPerSecond: limit });
    assert.equal(budget.frameBytes, Math.floor((limit * RATE_SHARE * BURST_SECONDS) / 4));
    const times: number[] = [];
    const sizes: number[] = [];
    for (let ms = 0; ms < 10_000; ms++, advance(1)) {
      const size = budget.frameBytes;
      while (budget.allows(1, size)) {
        budget.spend(size);
        times.push(ms);
        sizes.push(size);
      }
    }
    const { bytes } = busiestSecond(times, sizes);
    assert.ok(bytes < limit, `${bytes} bytes in one second against a limit of ${limit}`);
    assert.ok(bytes >= limit * RATE_SHARE, `${bytes} bytes: the budget wastes the rate`);
  });

  it('cuts frames no smaller than the relay floor for maxFrameBytes, and never above maxFrameBytes', () => {
    assert.equal(manual({ bytesPerSecond: 2048 }).budget.frameBytes, MIN_PACED_FRAME_BYTES);
    assert.equal(manual({ bytesPerSecond: 64 * 1024 * 1024 }).budget.frameBytes, 754_974);
    assert.equal(manual({ bytesPerSecond: 1024 ** 3 }).budget.frameBytes, MAX_FRAME);
  });

  it('counts frames sent without asking (control frames) against the same budget', () => {
    const { budget } = manual({ messagesPerSecond: 1000 });
    const burst = 1000 * RATE_SHARE * BURST_SECONDS;
    assert.equal(budget.allows(burst, 0), true);
    budget.spend(10);
    assert.equal(budget.allows(burst, 0), false);
    assert.equal(budget.allows(burst - 1, 0), true);
  });

  it('pauses after a frame refused for rate, however many refusals come', () => {
    const { budget, advance } = manual({ messagesPerSecond: 1000 });
    for (let index = 0; index < 20; index++) budget.refused();
    assert.equal(budget.refusals, 20);
    const pauseMs = REFUSAL_PAUSE_SECONDS * 1000;
    assert.ok(budget.waitMs() > pauseMs, `${budget.waitMs()} ms`);
    assert.ok(budget.waitMs() < pauseMs + 10, `${budget.waitMs()} ms: one pause, not twenty`);
    advance(pauseMs + 10);
    assert.equal(budget.allows(1, 0), true);
  });

  it('lets waiters go in turn once a frame fits, and live sends wait while anyone waits', async () => {
    const budget = new SendBudget({ maxFrameBytes: MAX_FRAME, limits: { messagesPerSecond: 100 } });
    while (budget.allows(1, 0)) budget.spend(10);
    let woken = 0;
    const waiting = [budget.whenRoom(), budget.whenRoom()].map((room) => room.then(() => woken++));
    assert.equal(budget.allows(1, 0), false, 'live data waits behind the waiters');
    // 100 frames a second at 90%: a frame's worth comes back in about 11 ms.
    await Promise.all(waiting);
    assert.equal(woken, 2);
  });

  it('lets every waiter go when the link closes', async () => {
    const budget = new SendBudget({ maxFrameBytes: MAX_FRAME, limits: { messagesPerSecond: 1 } });
    budget.spend(10);
    budget.refused();
    let woken = false;
    const waiting = budget.whenRoom().then(() => {
      woken = true;
    });
    budget.release();
    await waitFor(() => woken, 'the waiter released', 1000);
    await waiting;
  });
});

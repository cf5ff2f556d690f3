/**
 * Keeping under the rates the relay announced in its welcome (`limits.messagesPerSecond`,
 * `limits.bytesPerSecond`). The relay counts every frame an identity sends, and each frame's whole
 * WebSocket message, in windows of one second (relay/server/rate-limits.ts); beyond either rate it
 * refuses the frame (RELAY_ERR_RATE_LIMITED) and cuts an agent that keeps at it. So the link counts
 * the same: every frame it sends, control frames included, spends from one token bucket per rate.
 *
 * Each bucket fills at RATE_SHARE of its rate and holds BURST_SECONDS of that. In any one second
 * the relay then sees at most the refill (90%), the burst (4.5%) and the frames of the two waiters
 * let go together (below; a frame is at most a quarter of the byte burst): about 97% of its limit
 * (of a message rate from 50 a second up), the rest being room for a relay window that starts at
 * another moment than the agent's second. A frame the relay refuses all the same pauses the budget.
 *
 * Publishers ask before they send: live data takes room only when nobody waits for it (else it is
 * left to the log), and a replay round or the publisher's catch-up waits for room for a whole
 * frame, first come first served, so live data and replay share the budget in turns. A relay that
 * announces no rates (one older than the announcement) leaves the budget unlimited: the link sends
 * as it always did.
 */
import type { WelcomeLimits } from '../../relay/protocol/frames.ts';

/** Of each announced rate the agent uses this much: the rest absorbs windows that do not line up. */
export const RATE_SHARE = 0.9;
/** How much of a second's refill a bucket holds: 50 ms, short enough that a burst stays small. */
export const BURST_SECONDS = 0.05;
/**
 * After the relay refused a frame for rate (its window ran full all the same: a relay stall that
 * bunched frames up, or a clock that disagrees), nothing but control frames goes for this long,
 * so the refusals stay a handful, far from the relay's violationsBeforeDisconnect.
 */
export const REFUSAL_PAUSE_SECONDS = 0.25;
/** A frame is at most this share of the byte burst, so the two frames of a shared turn fit in it. */
const FRAMES_PER_BURST = 4;
/** The smallest frame the budget cuts to: the relay's own floor for maxFrameBytes. */
export const MIN_PACED_FRAME_BYTES = 1024;

/** What a publisher asks of the budget. */
export interface SendRoom {
  /** The largest frame to send, in bytes: the relay's maxFrameBytes, or less if the byte burst is smaller. */
  readonly frameBytes: number;
  /** Whether `frames` frames of `bytes` in all may go now, with nobody waiting before them. */
  allows(frames: number, bytes: number): boolean;
}

interface Bucket {
  /** Refill per millisecond. */
  readonly perMs: number;
  readonly capacity: number;
  tokens: number;
}

export class SendBudget implements SendRoom {
  readonly frameBytes: number;
  readonly #messages: Bucket | undefined;
  readonly #bytes: Bucket | undefined;
  readonly #now: () => number;
  #at: number;
  #waiters: (() => void)[] = [];
  #timer: NodeJS.Timeout | undefined;
  #released = false;
  #refusals = 0;

  constructor(
    welcome: { readonly maxFrameBytes: number; readonly limits?: WelcomeLimits | undefined },
    now: () => number = () => performance.now(),
  ) {
    this.#now = now;
    this.#at = now();
    const { messagesPerSecond, bytesPerSecond } = welcome.limits ?? {};
    this.#messages = messagesPerSecond === undefined ? undefined : bucket(messagesPerSecond, 1);
    let frameBytes = welcome.maxFrameBytes;
    if (bytesPerSecond !== undefined) {
      const burst = bytesPerSecond * RATE_SHARE * BURST_SECONDS;
      frameBytes = Math.min(
        frameBytes,
        Math.max(MIN_PACED_FRAME_BYTES, Math.floor(burst / FRAMES_PER_BURST)),
      );
      this.#bytes = bucket(bytesPerSecond, frameBytes);
    }
    this.frameBytes = frameBytes;
  }

  /** Whether the relay announced a rate at all. */
  get limited(): boolean {
    return this.#messages !== undefined || this.#bytes !== undefined;
  }

  /** Frames the relay refused for rate on this link. */
  get refusals(): number {
    return this.#refusals;
  }

  allows(frames: number, bytes: number): boolean {
    if (!this.limited) return true;
    if (this.#waiters.length > 0) return false;
    this.#refill();
    return holds(this.#messages, frames) && holds(this.#bytes, bytes);
  }

  /** One frame of `bytes` went to the relay (whoever sent it, and whether or not it asked). */
  spend(bytes: number): void {
    if (!this.limited) return;
    this.#refill();
    if (this.#messages !== undefined) this.#messages.tokens -= 1;
    if (this.#bytes !== undefined) this.#bytes.tokens -= bytes;
  }

  /** The relay refused a frame for rate: pause for REFUSAL_PAUSE_SECONDS, however many came. */
  refused(): void {
    this.#refusals++;
    this.#refill();
    for (const limit of [this.#messages, this.#bytes]) {
      if (limit !== undefined)
        limit.tokens = Math.min(limit.tokens, -limit.perMs * REFUSAL_PAUSE_SECONDS * 1000);
    }
  }

  /** Milliseconds until a whole frame fits; 0 if one does now. */
  waitMs(): number {
    this.#refill();
    return Math.max(shortfallMs(this.#messages, 1), shortfallMs(this.#bytes, this.frameBytes));
  }

  /** Resolves once a whole frame fits, after those who asked before (at once if unlimited), or on release(). */
  whenRoom(): Promise<void> {
    if (this.#released || (this.#waiters.length === 0 && this.waitMs() === 0)) return Promise.resolve();
    return new Promise((resolve) => {
      this.#waiters.push(resolve);
      this.#schedule();
    });
  }

  /** The link closed: nobody may wait any more. */
  release(): void {
    this.#released = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const resolve of waiters) resolve();
  }

  /**
   * Lets every waiter go once a whole frame fits: there are at most two (a replay round's turn and
   * the publisher's catch-up), and each sends one frame before it asks again, so the overshoot is
   * two frames at most, which the share leaves room for.
   */
  #schedule(): void {
    if (this.#timer !== undefined || this.#waiters.length === 0) return;
    const wait = this.waitMs();
    if (wait > 0) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#schedule();
      }, Math.ceil(wait));
      return;
    }
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const resolve of waiters) resolve();
  }

  #refill(): void {
    const now = this.#now();
    const elapsed = Math.max(0, now - this.#at);
    this.#at = now;
    for (const limit of [this.#messages, this.#bytes]) {
      if (limit !== undefined) limit.tokens = Math.min(limit.capacity, limit.tokens + limit.perMs * elapsed);
    }
  }
}

/** A bucket at RATE_SHARE of `perSecond`, holding BURST_SECONDS of it and never less than `largest`. */
function bucket(perSecond: number, largest: number): Bucket {
  const share = perSecond * RATE_SHARE;
  const capacity = Math.max(largest, share * BURST_SECONDS);
  return { perMs: share / 1000, capacity, tokens: capacity };
}

function holds(limit: Bucket | undefined, amount: number): boolean {
  return limit === undefined || limit.tokens >= amount;
}

function shortfallMs(limit: Bucket | undefined, amount: number): number {
  if (limit === undefined || limit.tokens >= amount) return 0;
  return (amount - limit.tokens) / limit.perMs;
}

/**
 * A service's bytes-per-second budget, shared by its streams and both directions: a token bucket
 * that holds at most one second of bytes. A stream takes what it sends (or grants) and, when that
 * ran the bucket into debt, waits until the debt is paid: the target's link is never pushed past
 * the rate for longer than one chunk. The exit counts a service's target connections a second in
 * one too (takeIfAvailable: a refused connect runs up no debt).
 */
export class ByteBudget {
  readonly #rate: number;
  readonly #now: () => number;
  #tokens: number;
  #at: number;

  constructor(bytesPerSecond: number, now: () => number = Date.now) {
    this.#rate = bytesPerSecond;
    this.#now = now;
    this.#tokens = bytesPerSecond;
    this.#at = now();
  }

  /** Takes `bytes`; returns the milliseconds until the bucket is out of debt (0: it is not in debt). */
  take(bytes: number): number {
    this.#refill();
    this.#tokens -= bytes;
    return this.#tokens >= 0 ? 0 : Math.ceil((-this.#tokens * 1000) / this.#rate);
  }

  /** Takes `amount` only if the bucket holds it; false (and nothing taken) otherwise. */
  takeIfAvailable(amount: number): boolean {
    this.#refill();
    if (this.#tokens < amount) return false;
    this.#tokens -= amount;
    return true;
  }

  #refill(): void {
    const now = this.#now();
    this.#tokens = Math.min(this.#rate, this.#tokens + ((now - this.#at) * this.#rate) / 1000);
    this.#at = now;
  }
}

/**
 * A clock and its timers that move only when the test moves them: a schedule runs through hours in
 * microseconds, and a test counts what happened instead of timing it. Pass `clock.now` as the
 * clock and `clock` itself as the timers (it has setTimeout and clearTimeout).
 */
interface Timer {
  readonly at: number;
  /** Ties on `at` run in the order they were set, as the platform's timers do. */
  readonly order: number;
  readonly callback: () => void;
}

export class ManualClock {
  #time: number;
  #order = 0;
  readonly #timers = new Map<number, Timer>();

  constructor(start: number) {
    this.#time = start;
  }

  readonly now = (): number => this.#time;

  setTimeout(callback: () => void, delayMs: number): unknown {
    const id = ++this.#order;
    this.#timers.set(id, { at: this.#time + Math.max(0, delayMs), order: id, callback });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }

  /** Timers set and not yet run or cleared. */
  get pendingTimers(): number {
    return this.#timers.size;
  }

  /**
   * Moves the clock forward by `ms`, running each timer due by then at its own time, in order, and
   * letting the work it starts settle (promises that resolve without real I/O) before the next.
   */
  async advance(ms: number): Promise<void> {
    const until = this.#time + ms;
    for (;;) {
      await settle();
      let next: [number, Timer] | undefined;
      for (const entry of this.#timers) {
        const [, timer] = entry;
        if (timer.at > until) continue;
        if (
          next === undefined ||
          timer.at < next[1].at ||
          (timer.at === next[1].at && timer.order < next[1].order)
        ) {
          next = entry;
        }
      }
      if (next === undefined) break;
      this.#timers.delete(next[0]);
      this.#time = Math.max(this.#time, next[1].at);
      next[1].callback();
    }
    this.#time = until;
    await settle();
  }
}

/** One turn of the event loop: every microtask queued by now (and by those) has run. */
export async function settle(): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
}

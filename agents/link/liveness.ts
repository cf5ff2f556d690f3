/**
 * Relay liveness, seen from the agent. The relay pings every agent every `pingIntervalMs` (a third
 * of its lease, relay/server/liveness.ts, checked on a tick of at most a second) and cuts an agent
 * it has not heard from for `leaseMs`. The agent holds the relay to the same budget: when nothing at
 * all has arrived for a whole lease (no ping, no data, no answer), the relay is gone, whatever TCP
 * says: a black-holed route or a frozen relay host can leave a connection looking open for many
 * minutes, and an agent waiting on it neither reconnects nor notices its data goes nowhere.
 */
import type { ToAgentFrameOf } from '../../relay/protocol/frames.ts';

/**
 * The lease is the budget, but never less than two ping intervals: a relay whose welcome announced
 * pings sparser than its lease must not make a healthy link look dead between two pings.
 */
const MIN_PING_INTERVALS_PER_BUDGET = 2;

/** How long the agent lets the relay say nothing before giving it up. */
export function silenceBudgetMs(
  welcome: Pick<ToAgentFrameOf<'welcome'>, 'leaseMs' | 'pingIntervalMs'>,
): number {
  return Math.max(welcome.leaseMs, MIN_PING_INTERVALS_PER_BUDGET * welcome.pingIntervalMs);
}

/**
 * Calls `onSilent` once when `heard()` has not been called for `budgetMs`. One timer, re-armed for
 * the remainder when it finds the link was heard meanwhile, so hearing a frame costs a clock read.
 */
export class RelaySilenceWatch {
  readonly #budgetMs: number;
  readonly #onSilent: () => void;
  readonly #now: () => number;
  #lastHeardAt: number;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(budgetMs: number, onSilent: () => void, now: () => number = () => performance.now()) {
    this.#budgetMs = budgetMs;
    this.#onSilent = onSilent;
    this.#now = now;
    this.#lastHeardAt = now();
    this.#arm(budgetMs);
  }

  heard(): void {
    this.#lastHeardAt = this.#now();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  #arm(delayMs: number): void {
    this.#timer = setTimeout(() => this.#check(), delayMs);
    // The socket keeps the process alive while the link is open; this timer alone must not.
    this.#timer.unref();
  }

  #check(): void {
    if (this.#stopped) return;
    const quietFor = this.#now() - this.#lastHeardAt;
    if (quietFor < this.#budgetMs) {
      this.#arm(this.#budgetMs - quietFor);
      return;
    }
    // Timers run before the event loop polls sockets: if this process was busy (a long GC, a slow
    // handler), frames may already be waiting unread. setImmediate runs after that poll, so they
    // count before the verdict, and an agent's own stall is never blamed on the relay.
    setImmediate(() => {
      if (this.#stopped) return;
      const stillQuietFor = this.#now() - this.#lastHeardAt;
      if (stillQuietFor < this.#budgetMs) {
        this.#arm(this.#budgetMs - stillQuietFor);
        return;
      }
      this.#stopped = true;
      this.#onSilent();
    });
  }
}

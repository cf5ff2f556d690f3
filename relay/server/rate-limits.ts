/**
 * Rate limits, per source address before authentication and per agent identity after it.
 * rate-limiter-flexible's memory limiter settles its promise synchronously, so frames keep their
 * order when each one waits on its own check.
 */
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import type { RelayConfig } from './config.ts';
import { SourceBudgets, type SourceBudget } from './trusted-sources.ts';

/** Window for counting rate-limited frames: abuse that persists this long ends the connection. */
const VIOLATION_WINDOW_SECONDS = 10;

export class RelayRateLimits {
  /** What one source address may do before authentication: the default, or a trusted network's. */
  readonly sources: SourceBudgets;
  readonly #attempts = new Map<SourceBudget, RateLimiterMemory>();
  readonly #messages: RateLimiterMemory;
  readonly #bytes: RateLimiterMemory;
  readonly #violations: RateLimiterMemory;

  constructor(limits: RelayConfig['limits']) {
    this.sources = new SourceBudgets(
      {
        connectionAttemptsPerMinute: limits.connectionAttemptsPerMinute,
        handshakesInProgressPerAddress: limits.handshakesInProgressPerAddress,
      },
      limits.trustedSources,
    );
    for (const budget of this.sources.all) {
      this.#attempts.set(
        budget,
        new RateLimiterMemory({ points: budget.connectionAttemptsPerMinute, duration: 60 }),
      );
    }
    this.#messages = new RateLimiterMemory({ points: limits.messagesPerSecond, duration: 1 });
    this.#bytes = new RateLimiterMemory({ points: limits.bytesPerSecond, duration: 1 });
    this.#violations = new RateLimiterMemory({
      points: limits.violationsBeforeDisconnect,
      duration: VIOLATION_WINDOW_SECONDS,
    });
  }

  /** A TCP connection from `address`, before any TLS: false once it tries too often. */
  allowConnection(address: string): Promise<boolean> {
    const limiter = this.#attempts.get(this.sources.budgetOf(address));
    if (limiter === undefined) throw new Error('no connection limiter for a known budget');
    return allowed(limiter.consume(address));
  }

  /** One frame of `bytes` from an authenticated agent. */
  async allowFrame(agent: string, bytes: number): Promise<boolean> {
    const [messages, volume] = await Promise.allSettled([
      this.#messages.consume(agent),
      this.#bytes.consume(agent, bytes),
    ]);
    return messages.status === 'fulfilled' && volume.status === 'fulfilled';
  }

  /** Counts a limited frame; false once the agent keeps it up (disconnect it). */
  recordViolation(agent: string): Promise<boolean> {
    return allowed(this.#violations.consume(agent));
  }
}

async function allowed(consumption: Promise<RateLimiterRes>): Promise<boolean> {
  try {
    await consumption;
    return true;
  } catch (rejection) {
    // A RateLimiterRes means "limited"; anything else is a bug worth surfacing.
    if (rejection instanceof RateLimiterRes) return false;
    throw rejection;
  }
}

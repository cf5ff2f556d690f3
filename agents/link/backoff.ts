/**
 * How long an agent waits before it tries the relay again: exponential backoff with full jitter
 * (AWS Architecture Blog, "Exponential Backoff And Jitter", 2015). The ceiling doubles with every
 * failed attempt up to a cap, and the delay is drawn uniformly below it, so a fleet that lost the
 * relay together comes back spread out instead of in one lump that the relay's handshake gate must
 * turn away.
 */

/**
 * The ceiling of the first retry. Half a second: a network blip or a relay restart is often over
 * that soon, so one lost connection costs little; agents that meet a relay still busy (its
 * handshake gate refuses early and cheaply, relay/server/connection-gate.ts) double from there.
 */
export const RECONNECT_BASE_MS = 500;
/**
 * The ceiling never grows past 30 s: an agent notices a relay that is back within half a minute
 * on average 15 s, while a relay that stays away costs each agent one attempt per ~15 s.
 */
export const RECONNECT_CAP_MS = 30_000;

export interface BackoffLimits {
  readonly baseMs: number;
  readonly capMs: number;
}

const DEFAULT_LIMITS: BackoffLimits = { baseMs: RECONNECT_BASE_MS, capMs: RECONNECT_CAP_MS };
/**
 * 2 ** 64 times any sensible base is far past any cap and still a finite double; beyond it the
 * ceiling is the cap anyway. Bounding the exponent keeps base * 2 ** attempt from reaching
 * Infinity (and 0 * Infinity from being NaN) for very large attempt numbers.
 */
const MAX_DOUBLINGS = 64;

/**
 * The delay before retry number `attempt` (0 for the first retry after a failure): uniform in
 * [0, min(cap, base * 2 ** attempt)). `random` returns [0, 1), like Math.random.
 */
export function reconnectDelayMs(
  attempt: number,
  limits: BackoffLimits = DEFAULT_LIMITS,
  random: () => number = Math.random,
): number {
  if (!(attempt >= 0)) throw new RangeError(`attempt must be a number >= 0, got ${attempt}`);
  const doublings = Math.min(Math.floor(attempt), MAX_DOUBLINGS);
  const ceiling = Math.min(limits.capMs, limits.baseMs * 2 ** doublings);
  return random() * ceiling;
}

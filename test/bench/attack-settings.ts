/**
 * Parameters of `npm run bench:attack`: the two attacks an outside review found (issue 12), each
 * bounded in count and in time, and the whole run by a watchdog.
 */

/** The relay's default `limits.connectionAttemptsPerMinute` (relay/server/config.ts), per source address. */
export const RELAY_CONNECTION_ATTEMPTS_PER_MINUTE = 120;

/** Scenario A: TLS handshakes without a client certificate, against the agent port. */
export const HANDSHAKE_FLOOD = {
  /**
   * Loopback addresses the attacker connects from (Linux routes all of 127.0.0.0/8 to lo). The
   * relay limits attempts per address, so an attacker with more addresses simply has more budget;
   * four show the effect while staying on this machine.
   */
  sourceAddresses: ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'],
  /**
   * Per address, paced evenly: 5 under the relay's default limit of 120, so that the limiter's
   * one-minute window never trips however the floods fall into it. This is what an attacker can
   * sustain without being refused by it.
   */
  attemptsPerAddressPerMinute: RELAY_CONNECTION_ATTEMPTS_PER_MINUTE - 5,
  /** One flood: ~19 attempts per address, ~77 in all; both floods together stay far under 120 per address. */
  durationMs: 10_000,
  /**
   * An attempt with no answer by then is given up (the relay's own TLS handshake timeout is
   * 10 s by default): it is counted as unanswered.
   */
  answerTimeoutMs: 10_000,
  /** After the last attempt settles, the relay may still be working off sockets it accepted. */
  tailMs: 1_000,
  /** The legitimate agent connects this far into each flood. */
  legitimateConnectAfterMs: 5_000,
  /** Quiet time between the floods, so that one's tail does not run into the next. */
  pauseMs: 2_000,
} as const;

/** The honest OT -> IT pair whose deliveries show what the floods do to real traffic. */
export const HONEST_PAIR = {
  /** One point per publish, every 2 ms: a fast plant signal, far below any rate limit. */
  publishIntervalMs: 2,
  /** Publishing before any window: the JIT, TLS buffers and the relay's first CRL reload settle. */
  warmUpMs: 1_000,
  /** The quiet window before the floods, for the reference gaps and the pair's own CPU cost. */
  baselineMs: 5_000,
} as const;

/** Scenario B: revocation while a slow client holds the enrollment port. */
export const SLOW_ENROLLMENT = {
  /** Declared body size: under the port's 32 KiB body cap, so the relay waits for it. */
  declaredBodyBytes: 20_000,
  /** One body byte this often: more often than any idle timeout a server would set. */
  byteIntervalMs: 2_000,
  /** The attacker stops (closes its connection) after this long, whatever the relay did. */
  maxDurationMs: 60_000,
  /**
   * After a slow client attaches, this long before anything else happens: a little over one byte
   * interval, so the relay holds its headers and two body bytes (a request in flight, not an idle
   * connection) whatever the scheduling on a busy machine.
   */
  settleMs: 2_500,
  /** How long after `token revoke` the enrollment port is watched for closing. */
  listenerCloseTimeoutMs: 5_000,
  /** How often that watch tries to connect (each accepted try counts against the port's limits). */
  listenerPollMs: 250,
} as const;

export const REVOCATION = {
  /** Waiting for the revoked agent's live connection to be cut: past this, "not within 30 s". */
  cutTimeoutMs: 30_000,
  /** A new handshake with the revoked certificate this long after `dmz-pki revoke` exits. */
  earlyReconnectAfterMs: 1_000,
  /** Bound on one reconnection attempt with the revoked certificate. */
  reconnectTimeoutMs: 5_000,
  /** SIGTERM to the relay's exit: past this, "not within 40 s" (and SIGKILL). */
  terminateTimeoutMs: 40_000,
} as const;

/** Bound on one `dmz-pki` command (each starts Node and tsx; `init` makes an RSA-3072 CA key). */
export const CLI_TIMEOUT_MS = 30_000;

/** Whole-run watchdog: every child is killed and the run fails if it is still going by then. */
export const ATTACK_RUN_TIME_LIMIT_MS = 175_000;

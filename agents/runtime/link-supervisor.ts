/**
 * Keeps the agent connected to the relay, forever: connect, and when the link is gone, wait an
 * exponential delay with full jitter (agents/link/backoff.ts) and connect again, so thousands of
 * agents cut by one relay restart come back spread out, not in one storm. The delay grows only
 * while attempts fail; a link that stayed up STABLE_LINK_MS starts the count again.
 */
import type { Logger } from 'pino';
import { DmzError } from '../../relay/protocol/errors.ts';
import { reconnectDelayMs, type BackoffLimits } from '../link/backoff.ts';
import type { RelayLink } from '../link/relay-link.ts';

/** A link that lasted this long was healthy: the next loss starts from the base delay again. */
export const STABLE_LINK_MS = 30_000;

/**
 * Codes by which the relay refuses this agent's certificate itself: no reconnect helps until the
 * agent is enrolled again. The relay says so once, closing the live link (agents/link
 * session-events.ts); a revoked certificate's next handshakes fail at TLS with no reason given
 * (the CRL), so the refusal is kept until a connection succeeds. dmz-pki cannot undo a
 * revocation, but the agent keeps trying at its capped backoff: a re-enrollment into its
 * credential directory is picked up at the next attempt, with no restart.
 */
export const CERTIFICATE_REFUSALS: ReadonlySet<string> = new Set(['RELAY_ERR_REVOKED']);

/** What `dmz-agent status` and the log tell the operator to do about a refusal. */
export const RE_ENROLL_HINT =
  'enroll this agent again with a new token (dmz-pki token create on the relay host, then ' +
  'dmz-agent enroll --token - --dir <credentials> --force here); the running agent uses it at its next attempt';

export interface LinkRefusal {
  /** The relay's code: one of CERTIFICATE_REFUSALS. */
  readonly code: string;
  /** When the relay said it, ms since the epoch. */
  readonly at: number;
}

export interface LinkState {
  readonly connected: boolean;
  /** Since when connected or disconnected, ms since the epoch. */
  readonly since: number;
  readonly connects: number;
  readonly lastError: string | undefined;
  /** The relay's last refusal of this agent's certificate, kept until a connection succeeds. */
  readonly lastRefusal: LinkRefusal | undefined;
}

export interface LinkSupervisorOptions {
  /** Opens one link; `closed` must be called when it is gone. */
  readonly connect: (closed: (code: number, reason: string) => void) => Promise<RelayLink>;
  readonly backoff: BackoffLimits;
  readonly onConnected: (link: RelayLink) => void;
  readonly onDisconnected: (link: RelayLink, code: number, reason: string) => void;
  readonly logger: Logger;
  readonly random?: () => number;
  readonly now?: () => number;
}

export class LinkSupervisor {
  readonly #options: LinkSupervisorOptions;
  readonly #now: () => number;
  #link: RelayLink | undefined;
  #attempt = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #connecting = false;
  #state: LinkState;

  constructor(options: LinkSupervisorOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#state = {
      connected: false,
      since: this.#now(),
      connects: 0,
      lastError: undefined,
      lastRefusal: undefined,
    };
  }

  get link(): RelayLink | undefined {
    return this.#link;
  }

  get state(): LinkState {
    return this.#state;
  }

  start(): void {
    void this.#connect();
  }

  /** Ends the link now and connects again at once (renewed credentials, reloaded settings). */
  cycle(): void {
    const link = this.#link;
    this.#attempt = 0;
    if (link === undefined) {
      clearTimeout(this.#timer);
      void this.#connect();
      return;
    }
    void link.close();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#link?.close();
  }

  async #connect(): Promise<void> {
    if (this.#stopped || this.#connecting || this.#link !== undefined) return;
    this.#connecting = true;
    let opened: RelayLink | undefined;
    let upAt = 0;
    const closed = (code: number, reason: string) => {
      // Called for the link we opened, once, whenever it goes (even during connect).
      if (opened === undefined || this.#link !== opened) return;
      this.#link = undefined;
      this.#state = { ...this.#state, connected: false, since: this.#now(), lastError: `${code} ${reason}` };
      if (this.#now() - upAt >= STABLE_LINK_MS) this.#attempt = 0;
      if (!this.#refused(reason)) this.#options.logger.warn({ code, reason }, 'relay link lost');
      this.#options.onDisconnected(opened, code, reason);
      this.#schedule();
    };
    try {
      opened = await this.#options.connect(closed);
    } catch (error) {
      this.#connecting = false;
      const message = error instanceof Error ? error.message : String(error);
      this.#state = { ...this.#state, lastError: message };
      if (!(error instanceof DmzError && this.#refused(error.code)))
        this.#options.logger.warn({ err: error, attempt: this.#attempt }, 'relay not reachable');
      this.#schedule();
      return;
    }
    this.#connecting = false;
    if (this.#stopped) {
      await opened.close();
      return;
    }
    upAt = this.#now();
    this.#link = opened;
    this.#state = {
      connected: true,
      since: upAt,
      connects: this.#state.connects + 1,
      lastError: undefined,
      lastRefusal: undefined,
    };
    this.#options.logger.info(
      { name: opened.welcome.name, role: opened.welcome.role },
      'connected to the relay',
    );
    if (opened.closed) {
      closed(1006, 'closed during connect');
      return;
    }
    this.#options.onConnected(opened);
  }

  /** Records (and logs, as the error it is) a refusal of this agent's certificate; false if `code` is none. */
  #refused(code: string): boolean {
    if (!CERTIFICATE_REFUSALS.has(code)) return false;
    this.#state = { ...this.#state, lastRefusal: { code, at: this.#now() } };
    this.#options.logger.error(
      { code, hint: RE_ENROLL_HINT },
      "the relay refuses this agent's certificate; reconnecting will not help until it is enrolled again",
    );
    return true;
  }

  #schedule(): void {
    if (this.#stopped) return;
    const delay = reconnectDelayMs(this.#attempt, this.#options.backoff, this.#options.random);
    this.#attempt++;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#connect(), delay);
  }
}

/**
 * Keeps the agent connected to the relay, forever: connect, and when the link is gone, wait an
 * exponential delay with full jitter (agents/link/backoff.ts) and connect again, so thousands of
 * agents cut by one relay restart come back spread out, not in one storm. The delay grows only
 * while attempts fail; a link that stayed up STABLE_LINK_MS starts the count again.
 */
import type { Logger } from 'pino';
import { reconnectDelayMs, type BackoffLimits } from '../link/backoff.ts';
import type { RelayLink } from '../link/relay-link.ts';

/** A link that lasted this long was healthy: the next loss starts from the base delay again. */
export const STABLE_LINK_MS = 30_000;

export interface LinkState {
  readonly connected: boolean;
  /** Since when connected or disconnected, ms since the epoch. */
  readonly since: number;
  readonly connects: number;
  readonly lastError: string | undefined;
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
    this.#state = { connected: false, since: this.#now(), connects: 0, lastError: undefined };
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
      this.#options.logger.warn({ code, reason }, 'relay link lost');
      this.#options.onDisconnected(opened, code, reason);
      this.#schedule();
    };
    try {
      opened = await this.#options.connect(closed);
    } catch (error) {
      this.#connecting = false;
      const message = error instanceof Error ? error.message : String(error);
      this.#state = { ...this.#state, lastError: message };
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
    this.#state = { connected: true, since: upAt, connects: this.#state.connects + 1, lastError: undefined };
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

  #schedule(): void {
    if (this.#stopped) return;
    const delay = reconnectDelayMs(this.#attempt, this.#options.backoff, this.#options.random);
    this.#attempt++;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#connect(), delay);
  }
}

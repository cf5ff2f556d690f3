/**
 * The TLS session tickets relays gave this process, kept in memory only, so that the next
 * connection to the same relay with the same credentials resumes (RFC 8446 section 2.2): after a
 * relay restart the relay skips its signature and the chain check of our certificate, and a fleet
 * is back several times sooner (relay/server/session-tickets.ts).
 *
 * A ticket is offered only for what it was made under: the same relay URL, client certificate and
 * trust anchor. A resumed session is the identity of the certificate its full handshake presented
 * (the relay never sees a certificate again), so a ticket made before a renewal or a re-enrollment
 * must never be offered after it; and resumption skips the relay's certificate check, so a ticket
 * must not outlive a change of the CA we trust it by. Node's relay sends no new ticket on a
 * resumed connection, so one ticket serves several reconnects, for at most its lifetime (the
 * client drops an expired one by itself); RFC 8446 appendix C.4 advises against reuse only because
 * it links connections, which the agent's certificate does anyway.
 */
import { createHash } from 'node:crypto';

/**
 * One entry per relay URL and credential this process connects with: a real agent needs a few (a
 * renewal adds one). An in-process test or emulator with many agents passes a cache of its own
 * size; past the bound the least recently used is forgotten, which costs one full handshake.
 */
export const DEFAULT_TLS_SESSIONS = 64;

/** What a ticket may be offered for. */
export interface SessionScope {
  readonly url: string;
  readonly certPem: string;
  readonly caPem: string;
}

export class TlsSessionCache {
  readonly #capacity: number;
  /** Insertion order is recency: the first entry is the least recently used. */
  readonly #sessions = new Map<string, Buffer>();

  constructor(capacity: number = DEFAULT_TLS_SESSIONS) {
    if (!(Number.isInteger(capacity) && capacity >= 1)) {
      throw new RangeError(`capacity must be a whole number >= 1, got ${capacity}`);
    }
    this.#capacity = capacity;
  }

  get size(): number {
    return this.#sessions.size;
  }

  /** The latest session for `scope`, to offer as tls.connect's `session`. */
  sessionFor(scope: SessionScope): Buffer | undefined {
    const key = scopeKey(scope);
    const session = this.#sessions.get(key);
    if (session !== undefined) {
      this.#sessions.delete(key);
      this.#sessions.set(key, session);
    }
    return session;
  }

  remember(scope: SessionScope, session: Buffer): void {
    const key = scopeKey(scope);
    this.#sessions.delete(key);
    this.#sessions.set(key, session);
    if (this.#sessions.size > this.#capacity) {
      const oldest = this.#sessions.keys().next();
      if (oldest.done !== true) this.#sessions.delete(oldest.value);
    }
  }

  forget(scope: SessionScope): void {
    this.#sessions.delete(scopeKey(scope));
  }

  clear(): void {
    this.#sessions.clear();
  }
}

/** The process's own cache, used by every link not given another. */
export const processTlsSessions = new TlsSessionCache();

/** SHA-256 over the three, each length-prefixed so no two scopes can run together. */
function scopeKey(scope: SessionScope): string {
  const hash = createHash('sha256');
  for (const part of [scope.url, scope.certPem, scope.caPem]) hash.update(`${part.length}:${part}`);
  return hash.digest('base64');
}

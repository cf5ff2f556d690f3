/**
 * Sessions the relay brokers: an IT agent and an OT agent paired under a topic filter. A session
 * holds the subscriptions made in it; it lives until either side closes it, either side goes away,
 * policy stops allowing it, or its lease lapses.
 */
import { topicMatches } from '../protocol/topics.ts';
import type { AgentConnection } from './agent-connection.ts';

export type SessionState = 'offered' | 'open';

export class Session {
  readonly id: number;
  readonly it: AgentConnection;
  readonly ot: AgentConnection;
  readonly filter: string;
  /** The IT agent's correlation number for its sessionOpen. */
  readonly ref: number;
  state: SessionState = 'offered';
  /** Offer deadline while offered, lease expiry once open (relay clock, ms). */
  expiresAt: number;
  readonly subscriptions = new Set<string>();
  /** Live points dropped for a slow consumer, not yet reported to it. */
  undelivered = 0;

  constructor(
    id: number,
    it: AgentConnection,
    ot: AgentConnection,
    filter: string,
    ref: number,
    expiresAt: number,
  ) {
    this.id = id;
    this.it = it;
    this.ot = ot;
    this.filter = filter;
    this.ref = ref;
    this.expiresAt = expiresAt;
  }

  /** The other member of the session. */
  peerOf(connection: AgentConnection): AgentConnection {
    return connection === this.it ? this.ot : this.it;
  }

  /** Records a subscription the OT agent was told of; the IT agent's count follows. */
  addSubscription(filter: string): void {
    if (this.subscriptions.has(filter)) return;
    this.subscriptions.add(filter);
    this.it.subscriptionCount++;
  }

  deleteSubscription(filter: string): void {
    if (this.subscriptions.delete(filter)) this.it.subscriptionCount--;
  }

  /** Whether a point on `topic` goes to this session's consumer. */
  wants(topic: string): boolean {
    if (this.state !== 'open' || !topicMatches(this.filter, topic)) return false;
    for (const filter of this.subscriptions) if (topicMatches(filter, topic)) return true;
    return false;
  }
}

/** Relay-wide session numbering and lookup. Ids are never reused while the relay runs. */
export class SessionTable {
  readonly #sessions = new Map<number, Session>();
  #nextId = 1;

  get size(): number {
    return this.#sessions.size;
  }

  /**
   * A fresh session id, for the offer that must reach the OT agent before the session exists; an
   * id whose offer was refused is simply never used.
   */
  reserveId(): number {
    return this.#nextId++;
  }

  create(
    id: number,
    it: AgentConnection,
    ot: AgentConnection,
    filter: string,
    ref: number,
    expiresAt: number,
  ): Session {
    const session = new Session(id, it, ot, filter, ref, expiresAt);
    this.#sessions.set(session.id, session);
    it.sessions.set(session.id, session);
    ot.sessions.set(session.id, session);
    return session;
  }

  get(id: number): Session | undefined {
    return this.#sessions.get(id);
  }

  delete(session: Session): void {
    this.#sessions.delete(session.id);
    session.it.sessions.delete(session.id);
    session.ot.sessions.delete(session.id);
    session.it.subscriptionCount -= session.subscriptions.size;
  }

  values(): IterableIterator<Session> {
    return this.#sessions.values();
  }
}

/** Sessions, offered or open, between this IT agent and this OT agent. */
export function countSessionsBetween(it: AgentConnection, ot: AgentConnection): number {
  let count = 0;
  for (const session of ot.sessions.values()) if (session.it === it) count++;
  return count;
}

/** Sessions offered to this OT agent that it has not answered yet. */
export function countPendingOffers(ot: AgentConnection): number {
  let count = 0;
  for (const session of ot.sessions.values()) if (session.ot === ot && session.state === 'offered') count++;
  return count;
}

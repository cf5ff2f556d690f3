/**
 * The relay's state for one connected agent: its verified identity, where it is in the protocol,
 * its sessions, and its outbound queue.
 */
import type { AgentIdentity } from '../protocol/identity.ts';
import type { AgentLink } from './link.ts';
import { Outbound, type OutboundLimits } from './outbound.ts';
import type { PendingRequest } from './requests.ts';
import type { Session } from './sessions.ts';

/** awaitingHello: only `hello` is allowed. ready: everything policy allows. closed: nothing. */
export type ConnectionState = 'awaitingHello' | 'ready' | 'closed';

export class AgentConnection {
  readonly link: AgentLink;
  readonly identity: AgentIdentity;
  readonly outbound: Outbound;
  readonly connectedAt: number;
  state: ConnectionState = 'awaitingHello';
  /** Relay clock (ms) of the last frame received: any frame proves the agent is alive. */
  lastSeen: number;
  readonly sessions = new Map<number, Session>();
  readonly pendingRequests = new Set<PendingRequest>();
  subscriptionCount = 0;
  /** Relay clock of the last ping sent, and how many were sent (the next ping's nonce). */
  lastPingAt: number;
  pingsSent = 0;
  /** A renewal is being signed: one at a time per connection bounds the signing work an agent causes. */
  renewing = false;
  /** The last topic this agent published to that passed validation and policy (a stream repeats it). */
  lastPublishTopic: string | undefined;

  constructor(link: AgentLink, limits: OutboundLimits, now: () => number, onTooSlow: () => void) {
    this.link = link;
    this.identity = link.identity;
    this.connectedAt = now();
    this.lastSeen = this.connectedAt;
    this.lastPingAt = this.connectedAt;
    this.outbound = new Outbound(link, limits, now, onTooSlow);
  }

  get name(): string {
    return this.identity.name;
  }

  get role(): AgentIdentity['role'] {
    return this.identity.role;
  }
}

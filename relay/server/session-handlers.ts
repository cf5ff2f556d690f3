/**
 * Session frames: an IT agent opens a session with an OT agent under a topic filter, the OT agent
 * accepts or refuses, the IT agent subscribes inside it, and either side (or the relay) ends it.
 */
import { DmzError, type ErrorCode } from '../protocol/errors.ts';
import type { ToRelayFrameOf } from '../protocol/frames.ts';
import type { AgentIdentity } from '../protocol/identity.ts';
import { validateFilter } from '../protocol/topics.ts';
import { quoteField } from '../protocol/wire-text.ts';
import type { AgentConnection } from './agent-connection.ts';
import { AUDIT_EVENT } from './audit.ts';
import type { RelayContext } from './context.ts';
import { answerRequest } from './requests.ts';
import { countPendingOffers, countSessionsBetween, type Session } from './sessions.ts';

export function openSession(
  ctx: RelayContext,
  connection: AgentConnection,
  frame: ToRelayFrameOf<'sessionOpen'>,
): void {
  if (connection.role !== 'it') throw new DmzError('RELAY_ERR_FORBIDDEN', 'only IT agents open sessions');
  validateFilter(frame.filter);
  // Policy first, about the OT agent as its certificate would name it: whether it is connected is
  // nobody's business who may have no session with it anyway.
  const ot: AgentIdentity = { trustDomain: connection.identity.trustDomain, role: 'ot', name: frame.peer };
  if (!ctx.policy.mayOpenSession(connection.identity, ot, frame.filter)) {
    ctx.audit.record(AUDIT_EVENT.sessionRefused, {
      agent: connection.name,
      peer: frame.peer,
      filter: frame.filter,
      reason: 'RELAY_ERR_FORBIDDEN',
    });
    throw new DmzError(
      'RELAY_ERR_FORBIDDEN',
      `policy grants no topic of ${quoteField(frame.peer)} within this session filter`,
    );
  }
  const peer = ctx.agents.get(frame.peer);
  if (peer === undefined || peer.role !== 'ot' || peer.state !== 'ready') {
    throw new DmzError('RELAY_ERR_NO_SUCH_PEER', `no OT agent named ${quoteField(frame.peer)} is connected`);
  }
  checkSessionLimits(ctx, connection, peer);
  const id = ctx.sessions.reserveId();
  peer.outbound.forward({
    type: 'sessionOpen',
    session: id,
    peer: connection.name,
    filter: frame.filter,
    leaseMs: ctx.config.sessions.leaseMs,
  });
  const expiresAt = ctx.now() + ctx.config.sessions.offerTimeoutMs;
  ctx.sessions.create(id, connection, peer, frame.filter, frame.ref, expiresAt);
  ctx.metrics.sessions.inc();
}

/**
 * Limits per agent, per pair and on unanswered offers: together they keep any one IT agent from
 * taking all of an OT agent's sessions, open or merely offered.
 */
function checkSessionLimits(ctx: RelayContext, it: AgentConnection, ot: AgentConnection): void {
  const { maxSessionsPerAgent, maxSessionsPerPair, maxPendingOffersPerAgent } = ctx.config.limits;
  if (it.sessions.size >= maxSessionsPerAgent || ot.sessions.size >= maxSessionsPerAgent) {
    throw new DmzError('RELAY_ERR_TOO_MANY', `at most ${maxSessionsPerAgent} sessions per agent`);
  }
  if (countSessionsBetween(it, ot) >= maxSessionsPerPair) {
    throw new DmzError(
      'RELAY_ERR_TOO_MANY',
      `at most ${maxSessionsPerPair} sessions with ${quoteField(ot.name)} per IT agent`,
    );
  }
  // Offers end by themselves after sessions.offerTimeoutMs (liveness.ts): trying later can work.
  if (countPendingOffers(ot) >= maxPendingOffersPerAgent) {
    throw new DmzError(
      'RELAY_ERR_PEER_BUSY',
      `${quoteField(ot.name)} has ${maxPendingOffersPerAgent} session offers unanswered`,
    );
  }
}

export function acceptSession(
  ctx: RelayContext,
  connection: AgentConnection,
  frame: ToRelayFrameOf<'sessionAccept'>,
): void {
  const session = ctx.sessions.get(frame.session);
  if (session === undefined || session.ot !== connection || session.state !== 'offered') {
    throw new DmzError('RELAY_ERR_NO_SUCH_SESSION', `no session ${frame.session} awaiting acceptance`);
  }
  const { leaseMs } = ctx.config.sessions;
  session.state = 'open';
  session.expiresAt = ctx.now() + leaseMs;
  // The answer to the IT agent's own sessionOpen, one per offer it made: like an ack, a control
  // frame. Refusing it for a full queue would leave the two sides disagreeing on the session.
  session.it.outbound.sendControl({
    type: 'sessionAccept',
    ref: session.ref,
    session: session.id,
    peer: connection.name,
    filter: session.filter,
    leaseMs,
  });
  ctx.audit.record(AUDIT_EVENT.sessionOpened, {
    session: session.id,
    it: session.it.name,
    ot: session.ot.name,
    filter: session.filter,
  });
}

export function closeSession(
  ctx: RelayContext,
  connection: AgentConnection,
  frame: ToRelayFrameOf<'sessionClose'>,
): void {
  const session = findMemberSession(connection, frame.session, false);
  const closer = quoteField(connection.name);
  if (session.state === 'offered' && connection === session.ot) {
    endSession(ctx, session, 'RELAY_ERR_SESSION_REFUSED', `${closer} refused the session`);
  } else {
    endSession(ctx, session, 'RELAY_ERR_SESSION_CLOSED', `session closed by ${closer}`, connection);
  }
}

/**
 * A subscription inside a session. The OT agent is told only what is new and what it can serve:
 * a filter already subscribed in the session is acknowledged again but not forwarded (its resume
 * cursor too is ignored: the OT agent streams that filter already).
 */
export function addSubscription(
  ctx: RelayContext,
  connection: AgentConnection,
  frame: ToRelayFrameOf<'subscribe'>,
): void {
  const session = findMemberSession(connection, frame.session, true);
  if (connection !== session.it) throw new DmzError('RELAY_ERR_FORBIDDEN', 'only the IT side subscribes');
  validateFilter(frame.filter);
  if (
    !ctx.policy.maySubscribeInSession(connection.identity, session.ot.identity, session.filter, frame.filter)
  ) {
    throw new DmzError(
      'RELAY_ERR_FORBIDDEN',
      `no subscribe grant covers ${quoteField(frame.filter)} within this session and the topics of ${quoteField(session.ot.name)}`,
    );
  }
  if (!session.subscriptions.has(frame.filter)) {
    const max = ctx.config.limits.maxSubscriptionsPerAgent;
    if (connection.subscriptionCount >= max) {
      throw new DmzError('RELAY_ERR_TOO_MANY', `at most ${max} subscriptions per agent`);
    }
    session.ot.outbound.forward({
      type: 'subscribe',
      session: session.id,
      filter: frame.filter,
      ...(frame.resume === undefined ? {} : { resume: frame.resume }),
    });
    session.addSubscription(frame.filter);
  }
  connection.outbound.sendControl({ type: 'ack', ref: frame.ref });
}

export function removeSubscription(
  ctx: RelayContext,
  connection: AgentConnection,
  frame: ToRelayFrameOf<'unsubscribe'>,
): void {
  const session = findMemberSession(connection, frame.session, true);
  if (connection !== session.it) throw new DmzError('RELAY_ERR_FORBIDDEN', 'only the IT side subscribes');
  // Like MQTT (3.1.1 section 3.10.4), unsubscribing from nothing is acknowledged all the same.
  if (session.subscriptions.has(frame.filter)) {
    session.ot.outbound.forward({ type: 'unsubscribe', session: session.id, filter: frame.filter });
    session.deleteSubscription(frame.filter);
  }
  connection.outbound.sendControl({ type: 'ack', ref: frame.ref });
}

/** The session `id` if `connection` is one of its members (and, if asked, it is open). */
export function findMemberSession(connection: AgentConnection, id: number, mustBeOpen: boolean): Session {
  const session = connection.sessions.get(id);
  if (session === undefined || (mustBeOpen && session.state !== 'open')) {
    throw new DmzError('RELAY_ERR_NO_SUCH_SESSION', `no open session ${id}`);
  }
  return session;
}

/**
 * The relay's own withdrawal of a subscription (policy changed): it happens whatever the OT
 * agent's queue, so the unsubscribe goes as a control frame, not as a forwarded one.
 */
export function withdrawSubscription(session: Session, filter: string): void {
  session.deleteSubscription(filter);
  session.ot.outbound.sendControl({ type: 'unsubscribe', session: session.id, filter });
}

/** Ends a session on both sides (but `closer`, who knows), answering its pending requests. */
export function endSession(
  ctx: RelayContext,
  session: Session,
  code: ErrorCode,
  message: string,
  closer?: AgentConnection,
): void {
  if (ctx.sessions.get(session.id) !== session) return;
  ctx.sessions.delete(session);
  ctx.metrics.sessions.dec();
  ctx.tunnels.sessionEnded(session, code);
  for (const request of ctx.requests.takeAllOf(session)) {
    if (request.requester !== closer) answerRequest(request, { code: 'RELAY_ERR_SESSION_CLOSED', message });
  }
  if (session.state === 'offered') {
    if (session.it !== closer)
      session.it.outbound.sendControl({ type: 'error', ref: session.ref, code, message });
    if (session.ot !== closer)
      session.ot.outbound.sendControl({ type: 'sessionClose', session: session.id, code, message });
  } else {
    for (const member of [session.it, session.ot]) {
      if (member !== closer && member.state !== 'closed') {
        member.outbound.sendControl({ type: 'sessionClose', session: session.id, code, message });
      }
    }
  }
  ctx.audit.record(AUDIT_EVENT.sessionClosed, {
    session: session.id,
    it: session.it.name,
    ot: session.ot.name,
    reason: code,
  });
}

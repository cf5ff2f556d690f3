/**
 * Session frames: an IT agent opens a session with an OT agent under a topic filter, the OT agent
 * accepts or refuses, the IT agent subscribes inside it, and either side (or the relay) ends it.
 */
import { DmzError, type ErrorCode } from '../protocol/errors.ts';
import type { ToRelayFrameOf } from '../protocol/frames.ts';
import { filtersIntersect, validateFilter } from '../protocol/topics.ts';
import type { AgentConnection } from './agent-connection.ts';
import { AUDIT_EVENT } from './audit.ts';
import type { RelayContext } from './context.ts';
import { answerRequest } from './requests.ts';
import type { Session } from './sessions.ts';

export function openSession(
  ctx: RelayContext,
  connection: AgentConnection,
  frame: ToRelayFrameOf<'sessionOpen'>,
): void {
  if (connection.role !== 'it') throw new DmzError('RELAY_ERR_FORBIDDEN', 'only IT agents open sessions');
  validateFilter(frame.filter);
  if (!ctx.policy.mayOpenSession(connection.identity, frame.filter)) {
    ctx.audit.record(AUDIT_EVENT.sessionRefused, {
      agent: connection.name,
      peer: frame.peer,
      filter: frame.filter,
      reason: 'RELAY_ERR_FORBIDDEN',
    });
    throw new DmzError('RELAY_ERR_FORBIDDEN', 'policy grants nothing within this session filter');
  }
  const peer = ctx.agents.get(frame.peer);
  if (peer === undefined || peer.role !== 'ot' || peer.state !== 'ready') {
    throw new DmzError('RELAY_ERR_NO_SUCH_PEER', `no OT agent named ${frame.peer} is connected`);
  }
  if (!ctx.policy.ownsTopicsIn(peer.identity, frame.filter)) {
    throw new DmzError('RELAY_ERR_FORBIDDEN', `filter lies outside the topics of ${peer.name}`);
  }
  const max = ctx.config.limits.maxSessionsPerAgent;
  if (connection.sessions.size >= max || peer.sessions.size >= max) {
    throw new DmzError('RELAY_ERR_TOO_MANY', `at most ${max} sessions per agent`);
  }
  const expiresAt = ctx.now() + ctx.config.sessions.offerTimeoutMs;
  const session = ctx.sessions.create(connection, peer, frame.filter, frame.ref, expiresAt);
  ctx.metrics.sessions.inc();
  peer.outbound.sendControl({
    type: 'sessionOpen',
    session: session.id,
    peer: connection.name,
    filter: session.filter,
    leaseMs: ctx.config.sessions.leaseMs,
  });
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
  if (session.state === 'offered' && connection === session.ot) {
    endSession(ctx, session, 'RELAY_ERR_SESSION_REFUSED', `${connection.name} refused the session`);
  } else {
    endSession(ctx, session, 'RELAY_ERR_SESSION_CLOSED', `session closed by ${connection.name}`, connection);
  }
}

export function addSubscription(
  ctx: RelayContext,
  connection: AgentConnection,
  frame: ToRelayFrameOf<'subscribe'>,
): void {
  const session = findMemberSession(connection, frame.session, true);
  if (connection !== session.it) throw new DmzError('RELAY_ERR_FORBIDDEN', 'only the IT side subscribes');
  validateFilter(frame.filter);
  if (!ctx.policy.maySubscribe(connection.identity, frame.filter)) {
    throw new DmzError('RELAY_ERR_FORBIDDEN', `no subscribe grant covers ${frame.filter}`);
  }
  if (!filtersIntersect(session.filter, frame.filter)) {
    throw new DmzError('RELAY_ERR_FORBIDDEN', 'filter lies outside the session filter');
  }
  if (!session.subscriptions.has(frame.filter)) {
    const max = ctx.config.limits.maxSubscriptionsPerAgent;
    if (connection.subscriptionCount >= max) {
      throw new DmzError('RELAY_ERR_TOO_MANY', `at most ${max} subscriptions per agent`);
    }
    session.subscriptions.add(frame.filter);
    connection.subscriptionCount++;
  }
  connection.outbound.sendControl({ type: 'ack', ref: frame.ref });
  session.ot.outbound.sendControl({
    type: 'subscribe',
    session: session.id,
    filter: frame.filter,
    ...(frame.resume === undefined ? {} : { resume: frame.resume }),
  });
}

export function removeSubscription(
  ctx: RelayContext,
  connection: AgentConnection,
  frame: ToRelayFrameOf<'unsubscribe'>,
): void {
  const session = findMemberSession(connection, frame.session, true);
  if (connection !== session.it) throw new DmzError('RELAY_ERR_FORBIDDEN', 'only the IT side subscribes');
  // Like MQTT (3.1.1 section 3.10.4), unsubscribing from nothing is acknowledged all the same.
  if (session.subscriptions.has(frame.filter)) withdrawSubscription(session, frame.filter);
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

export function withdrawSubscription(session: Session, filter: string): void {
  session.subscriptions.delete(filter);
  session.it.subscriptionCount--;
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

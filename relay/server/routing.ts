/**
 * The data path: published points to the sessions that want them, and requests and responses
 * between the two members of a session, with the relay holding the deadline.
 */
import { deliveryFrames } from '../protocol/codec.ts';
import { DmzError, ERROR_MESSAGES } from '../protocol/errors.ts';
import type { ToRelayFrameOf } from '../protocol/frames.ts';
import { topicMatches, validateTopic } from '../protocol/topics.ts';
import { quoteField } from '../protocol/wire-text.ts';
import type { AgentConnection } from './agent-connection.ts';
import type { RelayContext } from './context.ts';
import { answerRequest } from './requests.ts';
import { findMemberSession } from './session-handlers.ts';
import type { Session } from './sessions.ts';

/** The hot path: one frame of points, checked once, then sent to each session that wants it. */
export function routePublish(
  ctx: RelayContext,
  connection: AgentConnection,
  frame: ToRelayFrameOf<'publish'>,
): void {
  if (connection.lastPublishTopic !== frame.topic) {
    if (connection.role !== 'ot') throw new DmzError('RELAY_ERR_FORBIDDEN', 'only OT agents publish');
    validateTopic(frame.topic);
    if (!ctx.policy.mayPublish(connection.identity, frame.topic)) {
      throw new DmzError('RELAY_ERR_FORBIDDEN', `may not publish to ${quoteField(frame.topic)}`);
    }
    connection.lastPublishTopic = frame.topic;
  }
  ctx.metrics.pointsPublished.inc(frame.count);
  const frames = deliveryFrames({
    topic: frame.topic,
    seq: frame.seq,
    count: frame.count,
    points: frame.points,
  });
  if (frame.session !== undefined) {
    const session = ctx.sessions.get(frame.session);
    if (session === undefined || session.ot !== connection) {
      throw new DmzError('RELAY_ERR_NO_SUCH_SESSION', `no session ${frame.session}`);
    }
    if (session.wants(frame.topic)) deliverToSession(ctx, session, frames, frame.count);
    return;
  }
  for (const session of connection.sessions.values()) {
    if (session.ot === connection && session.wants(frame.topic)) {
      deliverToSession(ctx, session, frames, frame.count);
    }
  }
}

function deliverToSession(
  ctx: RelayContext,
  session: Session,
  frames: (session: number) => readonly Uint8Array[],
  points: number,
): void {
  const dropped = session.it.outbound.sendLive(session.id, frames(session.id), points, session.undelivered);
  if (dropped > 0) {
    session.undelivered += dropped;
    ctx.metrics.pointsDropped.inc(dropped);
  } else {
    session.undelivered = 0;
    ctx.metrics.pointsDelivered.inc(points);
  }
}

export function routeRequest(
  ctx: RelayContext,
  connection: AgentConnection,
  frame: ToRelayFrameOf<'request'>,
): void {
  const session = findMemberSession(connection, frame.session, true);
  validateTopic(frame.topic);
  if (!topicMatches(session.filter, frame.topic)) {
    throw new DmzError('RELAY_ERR_FORBIDDEN', 'topic lies outside the session filter');
  }
  // Whoever asks, a request in a session concerns a topic the session's OT agent owns.
  if (!ctx.policy.mayPublish(session.ot.identity, frame.topic)) {
    throw new DmzError('RELAY_ERR_FORBIDDEN', `topic is not one of ${quoteField(session.ot.name)}'s`);
  }
  if (!ctx.policy.mayCommand(connection.identity, frame.topic)) {
    throw new DmzError('RELAY_ERR_FORBIDDEN', `no command grant covers ${quoteField(frame.topic)}`);
  }
  if (ctx.requests.isPending(connection, session, frame.id))
    throw new DmzError('RELAY_ERR_DUPLICATE_REQUEST');
  const max = ctx.config.limits.maxPendingRequestsPerAgent;
  if (connection.pendingRequests.size >= max) {
    throw new DmzError('RELAY_ERR_TOO_MANY', `at most ${max} pending requests per agent`);
  }
  const pending = ctx.requests.add(connection, session, frame.id, frame.timeoutMs, (request) => {
    ctx.metrics.requests.labels('timeout').inc();
    answerRequest(request, { code: 'RELAY_ERR_TIMEOUT', message: ERROR_MESSAGES.RELAY_ERR_TIMEOUT });
  });
  // The relay's id goes into the forwarded frame, so the request is recorded first and forgotten
  // again when the peer has no room: either way nothing of it remains unless it was forwarded.
  try {
    session.peerOf(connection).outbound.forward({ ...frame, id: pending.relayId });
  } catch (error) {
    ctx.requests.complete(pending);
    throw error;
  }
}

export function routeResponse(
  ctx: RelayContext,
  connection: AgentConnection,
  frame: ToRelayFrameOf<'response'>,
): void {
  const request = ctx.requests.find(frame.id);
  // Late (after the deadline) or not addressed to this agent: dropped, as the requester has moved on.
  if (
    request === undefined ||
    request.session.id !== frame.session ||
    request.session.peerOf(request.requester) !== connection
  ) {
    ctx.metrics.requests.labels('late_or_unknown').inc();
    return;
  }
  // A requester with no room keeps its request pending: the responder may answer again, or the
  // deadline answers for it.
  request.requester.outbound.forward({ ...frame, id: request.requesterId });
  ctx.requests.complete(request);
  ctx.metrics.requests.labels(frame.error === undefined ? 'ok' : 'error').inc();
}

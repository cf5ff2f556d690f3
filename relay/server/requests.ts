/**
 * Requests in flight between the two members of a session. The relay renumbers each request so
 * that a responder can only answer what it was asked, and enforces the deadline itself: a late
 * response is dropped, and the requester gets a timeout.
 */
import type { ErrorCode } from '../protocol/errors.ts';
import type { AgentConnection } from './agent-connection.ts';
import type { Session } from './sessions.ts';

export interface PendingRequest {
  readonly relayId: number;
  readonly requester: AgentConnection;
  readonly session: Session;
  /** The id the requester chose; it gets its response under this id. */
  readonly requesterId: number;
  readonly timer: NodeJS.Timeout;
}

export class PendingRequests {
  readonly #byRelayId = new Map<number, PendingRequest>();
  #nextId = 1;

  /** Starts tracking; `onTimeout` runs once the deadline passes without a response. */
  add(
    requester: AgentConnection,
    session: Session,
    requesterId: number,
    timeoutMs: number,
    onTimeout: (request: PendingRequest) => void,
  ): PendingRequest {
    // u32 wrap-around: ids are only unique among pending requests, which is all that matters.
    const relayId = this.#nextId;
    this.#nextId = this.#nextId === 0xffff_ffff ? 1 : this.#nextId + 1;
    const timer = setTimeout(() => {
      if (this.#byRelayId.get(relayId) === request) {
        this.#remove(request);
        onTimeout(request);
      }
    }, timeoutMs);
    timer.unref();
    const request: PendingRequest = { relayId, requester, session, requesterId, timer };
    this.#byRelayId.set(relayId, request);
    requester.pendingRequests.add(request);
    return request;
  }

  isPending(requester: AgentConnection, session: Session, requesterId: number): boolean {
    for (const request of requester.pendingRequests) {
      if (request.session === session && request.requesterId === requesterId) return true;
    }
    return false;
  }

  /** The request a response answers, or undefined when it is unknown or late. */
  find(relayId: number): PendingRequest | undefined {
    return this.#byRelayId.get(relayId);
  }

  /** Stops tracking a request (answered). */
  complete(request: PendingRequest): void {
    this.#remove(request);
  }

  /** Removes and returns every request of a session that is ending. */
  takeAllOf(session: Session): PendingRequest[] {
    const taken = [...session.it.pendingRequests, ...session.ot.pendingRequests].filter(
      (request) => request.session === session,
    );
    for (const request of taken) this.#remove(request);
    return taken;
  }

  #remove(request: PendingRequest): void {
    clearTimeout(request.timer);
    this.#byRelayId.delete(request.relayId);
    request.requester.pendingRequests.delete(request);
  }
}

/** Answers a request on the relay's behalf (timeout, session gone), under the requester's own id. */
export function answerRequest(request: PendingRequest, error: { code: ErrorCode; message: string }): void {
  request.requester.outbound.sendControl({
    type: 'response',
    session: request.session.id,
    id: request.requesterId,
    error,
  });
}

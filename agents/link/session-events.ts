/**
 * The session events the relay sends an agent, one handler per frame type (the moscajs/aedes
 * shape): each hands its frame to the agent's typed handler, and the few that need an answer
 * (a session offer, a request) send it. A throwing handler is caught and reported, so one bad
 * handler cannot take the link down.
 */
import { DmzError } from '../../relay/protocol/errors.ts';
import type { ToAgentFrameOf, ToRelayFrame } from '../../relay/protocol/frames.ts';

export type SessionOffer = ToAgentFrameOf<'sessionOpen'>;
export type OpenedSession = ToAgentFrameOf<'sessionAccept'>;
export type Delivery = ToAgentFrameOf<'deliver'>;
export type Dropped = ToAgentFrameOf<'dropped'>;
export type SessionLease = ToAgentFrameOf<'sessionLease'>;
export type SessionClosed = ToAgentFrameOf<'sessionClose'>;
/** OT side: the relay forwards an IT agent's subscribe (session, filter, and its cursor `resume`). */
export type SubscriptionChange = ToAgentFrameOf<'subscribe'>;
export type Unsubscription = ToAgentFrameOf<'unsubscribe'>;
export type IncomingRequest = ToAgentFrameOf<'request'>;
/** OT side: the relay hands over a stream an IT agent opened to one of this agent's services. */
export type StreamOffer = ToAgentFrameOf<'streamOpen'>;
export type StreamData = ToAgentFrameOf<'streamData'>;
export type StreamWindow = ToAgentFrameOf<'streamWindow'>;
export type StreamClosed = ToAgentFrameOf<'streamClose'>;
/** The relay refused one of this agent's stream frames (`stream` names the stream). */
export type StreamRefusal = ToAgentFrameOf<'error'> & { readonly stream: number };

/** Typed session events; every handler optional. A throwing handler is caught and reported to handlerError (a throwing sessionOffered refuses). */
export interface LinkEvents {
  /** OT: accept (true, the default) or refuse (false) a session an IT agent asked for. */
  sessionOffered?(offer: SessionOffer): boolean;
  /** OT: an IT agent subscribed in a session; `resume` is the IT agent's cursor. */
  subscribed?(subscription: SubscriptionChange): void;
  /** OT: an IT agent gave up a subscription. */
  unsubscribed?(unsubscription: Unsubscription): void;
  /** IT: points published under a subscription. */
  delivery?(delivery: Delivery): void;
  /** IT: the relay dropped live points for us because we read too slowly. */
  dropped?(dropped: Dropped): void;
  /** The relay renewed a session's lease. */
  lease?(lease: SessionLease): void;
  /** Either side: the relay or the peer ended a session. */
  sessionClosed?(closed: SessionClosed): void;
  /** OT: an IT agent opened a stream to a service (agents/tunnels/exit.ts answers it). */
  streamOpened?(offer: StreamOffer): void;
  /** Either side: bytes of a stream (and its end, when `end`). */
  streamData?(data: StreamData): void;
  /** Either side: the peer granted more credit on a stream. */
  streamWindow?(window: StreamWindow): void;
  /** Either side: the peer or the relay aborted a stream. */
  streamClosed?(closed: StreamClosed): void;
  /** Either side: the relay refused a stream frame of ours; the stream is as it was. */
  streamRefused?(refusal: StreamRefusal): void;
  /** Answers a request; throw a DmzError to answer with its code. Default: refuse with RELAY_ERR_FORBIDDEN. */
  request?(request: IncomingRequest): Promise<Uint8Array> | Uint8Array;
  /**
   * The link is gone (called once): the relay's close code and reason (an error code, e.g.
   * RELAY_ERR_REVOKED), or 1006 for a connection that ended without a close frame, with reason
   * AGENT_ERR_RELAY_SILENT when the link gave up a relay that fell silent.
   */
  closed?(code: number, reason: string): void;
  /** A handler above threw; the link caught it and carried on. */
  handlerError?(error: unknown): void;
}

/** How an agent without a request handler answers every request. */
export const REQUEST_REFUSAL = {
  code: 'RELAY_ERR_FORBIDDEN',
  message: 'this agent answers no requests',
} as const satisfies { code: DmzError['code']; message: string };

/** What a handler may use of the link. */
export interface SessionEventContext {
  readonly events: LinkEvents;
  isClosed(): boolean;
  send(frame: ToRelayFrame): void;
}

export type SessionEventFrame = ToAgentFrameOf<
  | 'sessionOpen'
  | 'subscribe'
  | 'unsubscribe'
  | 'deliver'
  | 'dropped'
  | 'sessionLease'
  | 'sessionClose'
  | 'request'
  | 'streamOpen'
  | 'streamData'
  | 'streamWindow'
  | 'streamClose'
>;

type Handlers = {
  readonly [T in SessionEventFrame['type']]: (frame: ToAgentFrameOf<T>, context: SessionEventContext) => void;
};

const HANDLERS: Handlers = {
  sessionOpen(offer, context) {
    const accept = runHandler(context.events, () => context.events.sessionOffered?.(offer) ?? true) ?? false;
    context.send(
      accept
        ? { type: 'sessionAccept', session: offer.session }
        : { type: 'sessionClose', session: offer.session },
    );
  },
  subscribe: (subscription, { events }) => runHandler(events, () => events.subscribed?.(subscription)),
  unsubscribe: (unsubscription, { events }) =>
    runHandler(events, () => events.unsubscribed?.(unsubscription)),
  deliver: (delivery, { events }) => runHandler(events, () => events.delivery?.(delivery)),
  dropped: (dropped, { events }) => runHandler(events, () => events.dropped?.(dropped)),
  sessionLease: (lease, { events }) => runHandler(events, () => events.lease?.(lease)),
  sessionClose: (closed, { events }) => runHandler(events, () => events.sessionClosed?.(closed)),
  request: answerRequest,
  streamOpen: (offer, { events }) => runHandler(events, () => events.streamOpened?.(offer)),
  streamData: (data, { events }) => runHandler(events, () => events.streamData?.(data)),
  streamWindow: (window, { events }) => runHandler(events, () => events.streamWindow?.(window)),
  streamClose: (closed, { events }) => runHandler(events, () => events.streamClosed?.(closed)),
};

export function dispatchSessionEvent(frame: SessionEventFrame, context: SessionEventContext): void {
  // TypeScript cannot pair the table's entry with the frame's own type; the table's type does.
  (HANDLERS[frame.type] as (frame: SessionEventFrame, context: SessionEventContext) => void)(frame, context);
}

/** Answers a request with the handler's payload, or the code of the DmzError it threw. */
function answerRequest(request: IncomingRequest, context: SessionEventContext): void {
  const respond = (body: { payload: Uint8Array } | { error: { code: string; message: string } }) => {
    // The link may have closed while the handler worked: then there is nobody to answer.
    if (!context.isClosed())
      context.send({ type: 'response', session: request.session, id: request.id, ...body });
  };
  const { events } = context;
  if (events.request === undefined) {
    respond({ error: REQUEST_REFUSAL });
    return;
  }
  Promise.resolve()
    .then(() => events.request?.(request) ?? refuse())
    .then(
      (payload) => respond({ payload }),
      (error: unknown) =>
        respond({
          error:
            error instanceof DmzError
              ? { code: error.code, message: error.message }
              : { code: 'RELAY_ERR_INTERNAL', message: 'request handler failed' },
        }),
    );
}

function refuse(): never {
  throw new DmzError(REQUEST_REFUSAL.code, REQUEST_REFUSAL.message);
}

/** Runs a user handler inside a socket event; returns undefined if it threw (after reporting it). */
export function runHandler<T>(events: LinkEvents, handler: () => T): T | undefined {
  try {
    return handler();
  } catch (error) {
    try {
      events.handlerError?.(error);
    } catch {
      // The error reporter failed too; nothing is left to tell.
    }
    return undefined;
  }
}

/**
 * An agent's link to the relay, for both roles: the connection (connection.ts), calls answered
 * by ref or id (calls.ts), typed session events (session-events.ts), the watch on the relay's
 * liveness (liveness.ts) and the write backlog (write-backlog.ts), put together. Reconnecting is
 * the caller's: a closed link stays closed; backoff.ts says how long to wait before the next one.
 */
import type { WebSocket } from 'ws';
import { CLOSE_CODE } from '../../relay/protocol/close-codes.ts';
import { decodeFrame, encodeFrame } from '../../relay/protocol/codec.ts';
import { DmzError, ERROR_MESSAGES, isErrorCode } from '../../relay/protocol/errors.ts';
import type { ToAgentFrame, ToRelayFrame } from '../../relay/protocol/frames.ts';
import { encodePointBatch } from '../points/batch.ts';
import { Calls, type Acknowledgement } from './calls.ts';
import { connectToRelay, type RelayConnection, type RelayLinkOptions, type Welcome } from './connection.ts';
import { RelaySilenceWatch, silenceBudgetMs } from './liveness.ts';
import {
  dispatchSessionEvent,
  runHandler,
  type LinkEvents,
  type OpenedSession,
  type SessionEventContext,
} from './session-events.ts';
import { WriteBacklog } from './write-backlog.ts';

export type { RelayLinkOptions, Welcome } from './connection.ts';
export type {
  Delivery,
  Dropped,
  IncomingRequest,
  LinkEvents,
  OpenedSession,
  SessionClosed,
  SessionLease,
  SessionOffer,
  SubscriptionChange,
  Unsubscription,
} from './session-events.ts';

/**
 * RFC 6455 section 7.1.5: the code an endpoint reports for a connection that ended without a close
 * frame, which is how the link ends one whose relay fell silent (nobody is left to hear a close).
 */
const ABNORMAL_CLOSURE = 1006;

export class RelayLink {
  readonly welcome: Welcome;
  /** Whether this connection resumed an earlier TLS session (a ticket) instead of a full handshake. */
  readonly tlsResumed: boolean;
  readonly #socket: WebSocket;
  readonly #events: LinkEvents;
  readonly #calls = new Calls();
  readonly #backlog: WriteBacklog;
  readonly #silence: RelaySilenceWatch;
  readonly #context: SessionEventContext;
  readonly #gone: Promise<void>;
  #markGone: () => void = () => undefined;
  #closed = false;
  /** Why the link itself ended the connection, when it did (the close event then has no reason). */
  #endedFor: DmzError['code'] | undefined;

  private constructor(connection: RelayConnection, events: LinkEvents) {
    const { socket, transport, welcome } = connection;
    this.#socket = socket;
    this.welcome = welcome;
    this.tlsResumed = connection.tlsResumed;
    this.#events = events;
    this.#backlog = new WriteBacklog(socket, transport);
    this.#silence = new RelaySilenceWatch(silenceBudgetMs(welcome), () =>
      this.#end('AGENT_ERR_RELAY_SILENT'),
    );
    this.#gone = new Promise((resolve) => {
      this.#markGone = resolve;
    });
    this.#context = { events, isClosed: () => this.#closed, send: (frame) => this.#send(frame) };
    socket.on('message', (data: Buffer) => this.#receive(data));
    // Anything the relay sends counts as a sign of life, WebSocket control frames included.
    socket.on('ping', () => this.#silence.heard());
    socket.on('pong', () => this.#silence.heard());
    socket.on('error', () => undefined); // surfaced through 'close'
    socket.on('close', (code: number, reason: Buffer) => this.#onClose(code, reason.toString()));
  }

  static connect(options: RelayLinkOptions, events: LinkEvents = {}): Promise<RelayLink> {
    return connectToRelay(options, (connection) => new RelayLink(connection, events));
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes queued for the relay but not yet written to the network. */
  get bufferedBytes(): number {
    return this.#backlog.bytes;
  }

  /** Resolves when bufferedBytes <= maxBufferedBytes (at once if already), or when the link closes. */
  whenWritable(maxBufferedBytes: number): Promise<void> {
    return this.#closed ? Promise.resolve() : this.#backlog.whenAtMost(maxBufferedBytes);
  }

  /** IT side: asks the relay for a session with an OT agent under a topic filter. */
  async openSession(peer: string, filter: string): Promise<OpenedSession> {
    const accepted = await this.#call((ref) => ({ type: 'sessionOpen', ref, peer, filter }));
    if (accepted.type !== 'sessionAccept')
      throw new DmzError('RELAY_ERR_INVALID_FRAME', `relay answered a session open with ${accepted.type}`);
    return accepted;
  }

  closeSession(session: number): void {
    this.#send({ type: 'sessionClose', session });
  }

  /** IT side: `resume` is this consumer's cursor, for the OT agent's replay. */
  async subscribe(session: number, filter: string, resume?: Uint8Array): Promise<void> {
    await this.#call((ref) => ({
      type: 'subscribe',
      ref,
      session,
      filter,
      ...(resume === undefined ? {} : { resume }),
    }));
  }

  async unsubscribe(session: number, filter: string): Promise<void> {
    await this.#call((ref) => ({ type: 'unsubscribe', ref, session, filter }));
  }

  /** Asks the relay to certify a fresh key for this agent's identity (CSR in PEM). */
  async renew(csr: string): Promise<{ certificate: string; ca: string }> {
    const renewed = await this.#call((ref) => ({ type: 'renew', ref, csr }));
    if (renewed.type !== 'renewed')
      throw new DmzError('RELAY_ERR_INVALID_FRAME', 'relay did not answer with a certificate');
    return { certificate: renewed.certificate, ca: renewed.ca };
  }

  /** OT side: points `seq`, `seq+1`, ... of stream `topic`; `session` directs a replay. */
  publish(topic: string, seq: number, points: readonly Uint8Array[], session?: number): void {
    this.publishBatch(topic, seq, encodePointBatch(points), points.length, session);
  }

  /** OT side: a batch already laid out (agents/points/batch.ts) of `count` points. */
  publishBatch(topic: string, seq: number, batch: Uint8Array, count: number, session?: number): void {
    this.#send({
      type: 'publish',
      topic,
      seq,
      count,
      points: batch,
      ...(session === undefined ? {} : { session }),
    });
  }

  /**
   * Sends a request through a session; resolves with the response payload. The relay enforces
   * `timeoutMs` and answers RELAY_ERR_TIMEOUT when the peer did not answer in time.
   */
  request(session: number, topic: string, payload: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(linkClosed());
    const id = this.#calls.nextNumber();
    const response = this.#calls.awaitResponse(id);
    this.#send({ type: 'request', session, id, topic, timeoutMs, payload });
    return response;
  }

  /** Closes with 1001 (going away) and resolves once the connection is closed. */
  close(): Promise<void> {
    if (!this.#closed) this.#socket.close(CLOSE_CODE.goingAway, 'agent closing');
    return this.#gone;
  }

  /** Ends the link at once (no close handshake), e.g. when the relay fell silent. */
  terminate(): void {
    this.#socket.terminate();
  }

  #end(code: DmzError['code']): void {
    this.#endedFor ??= code;
    this.#socket.terminate();
  }

  async #call(frame: (ref: number) => ToRelayFrame): Promise<Acknowledgement> {
    if (this.#closed) throw linkClosed();
    const ref = this.#calls.nextNumber();
    const answer = this.#calls.awaitAck(ref);
    this.#send(frame(ref));
    return answer;
  }

  #send(frame: ToRelayFrame): void {
    if (this.#closed) throw linkClosed();
    this.#socket.send(encodeFrame(frame));
  }

  #receive(data: Buffer): void {
    this.#silence.heard();
    let frame: ToAgentFrame;
    try {
      frame = decodeFrame(data, 'toAgent');
    } catch {
      this.#socket.close(CLOSE_CODE.protocolError, 'RELAY_ERR_MALFORMED_FRAME');
      return;
    }
    switch (frame.type) {
      case 'ack':
      case 'sessionAccept':
      case 'renewed':
      case 'error':
      case 'response':
        this.#calls.settle(frame);
        return;
      case 'ping':
        this.#send({ type: 'pong', nonce: frame.nonce });
        return;
      case 'sessionOpen':
      case 'subscribe':
      case 'unsubscribe':
      case 'deliver':
      case 'dropped':
      case 'sessionLease':
      case 'sessionClose':
      case 'request':
        dispatchSessionEvent(frame, this.#context);
        return;
      case 'welcome':
      case 'pong':
        return; // heard (above); nothing else to do: the link sends no pings of its own.
    }
  }

  #onClose(code: number, reason: string): void {
    this.#closed = true;
    this.#silence.stop();
    const why = this.#endedFor ?? reason;
    const closedCode = this.#endedFor === undefined ? code : ABNORMAL_CLOSURE;
    const message = `connection closed (${closedCode} ${why})`;
    this.#calls.rejectAll(isErrorCode(why) ? new DmzError(why, message) : linkClosed(message));
    this.#backlog.release();
    this.#markGone();
    runHandler(this.#events, () => this.#events.closed?.(closedCode, why));
  }
}

function linkClosed(message: string = ERROR_MESSAGES.AGENT_ERR_LINK_CLOSED): DmzError {
  return new DmzError('AGENT_ERR_LINK_CLOSED', message);
}

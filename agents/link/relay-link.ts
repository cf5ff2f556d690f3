/**
 * An agent's link to the relay, for both roles: the connection (connection.ts), calls answered
 * by ref or id (calls.ts), typed session events (session-events.ts), the watch on the relay's
 * liveness (liveness.ts), the write backlog (write-backlog.ts) and the send budget under the
 * relay's announced rates (send-budget.ts), put together. Reconnecting is
 * the caller's: a closed link stays closed; backoff.ts says how long to wait before the next one.
 */
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { CLOSE_CODE } from '../../relay/protocol/close-codes.ts';
import { decodeFrame, encodeFrame, streamDataFrame } from '../../relay/protocol/codec.ts';
import { DmzError, ERROR_MESSAGES, isErrorCode } from '../../relay/protocol/errors.ts';
import type { ToAgentFrame, ToRelayFrame } from '../../relay/protocol/frames.ts';
import { binaryFrameHeader } from '../../relay/protocol/websocket-frame.ts';
import { encodePointBatch } from '../points/batch.ts';
import { Calls, type Acknowledgement } from './calls.ts';
import { connectToRelay, type RelayConnection, type RelayLinkOptions, type Welcome } from './connection.ts';
import { RelaySilenceWatch, silenceBudgetMs } from './liveness.ts';
import { SendBudget } from './send-budget.ts';
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
  StreamClosed,
  StreamData,
  StreamOffer,
  StreamRefusal,
  StreamWindow,
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
  /** What the relay's announced rates let this link send; every frame sent spends from it. */
  readonly budget: SendBudget;
  readonly #socket: WebSocket;
  /** The TLS socket under #socket, which stream data is written to directly (sendStreamData). */
  readonly #transport: Socket;
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
    this.#transport = transport;
    this.welcome = welcome;
    this.tlsResumed = connection.tlsResumed;
    this.#events = events;
    this.#backlog = new WriteBacklog(socket, transport);
    this.budget = new SendBudget(welcome);
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

  /**
   * Resolves when bufferedBytes <= maxBufferedBytes and the send budget has room for a whole frame
   * (at once if both already), or when the link closes.
   */
  async whenWritable(maxBufferedBytes: number): Promise<void> {
    if (this.#closed) return;
    await this.#backlog.whenAtMost(maxBufferedBytes);
    await this.budget.whenRoom();
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

  /** IT side: opens tunnel stream `stream` to `service`, granting the OT side `window` bytes. */
  openStream(session: number, stream: number, service: string, window: number): void {
    this.#send({ type: 'streamOpen', session, stream, service, window });
  }

  /**
   * Bytes of a stream (at most the credit the peer granted); `end` half-closes our direction. The
   * frame goes to the TLS socket in its pieces, the data as the local socket read it, never copied
   * into one message (ws.send takes one buffer). Writing beside ws is safe as it is for the relay's
   * message writer (relay/server/message-writer.ts): ws writes its own frames synchronously, in
   * call order, as it never compresses (perMessageDeflate is off) nor sends a Blob here; and once
   * ws is closing nothing is written, as ws.send would drop it too.
   */
  sendStreamData(session: number, stream: number, data: Uint8Array, end?: boolean): void {
    if (this.#closed) throw linkClosed();
    const fields = end === true ? { session, stream, data, end } : { session, stream, data };
    const [head, body] = streamDataFrame(fields);
    const length = head.byteLength + body.byteLength;
    this.budget.spend(length);
    if (this.#socket.readyState !== this.#socket.OPEN) return;
    // One writev, so one TLS write: the header, the head and the data in the same records.
    this.#transport.cork();
    this.#transport.write(binaryFrameHeader(length, true));
    this.#transport.write(head);
    this.#transport.write(body);
    this.#transport.uncork();
  }

  /** Lets the peer send `credit` more bytes on a stream. */
  grantStreamCredit(session: number, stream: number, credit: number): void {
    this.#send({ type: 'streamWindow', session, stream, credit });
  }

  /** Aborts a stream in both directions, saying why (an error code). */
  closeStream(session: number, stream: number, code: DmzError['code'], message?: string): void {
    this.#send({ type: 'streamClose', session, stream, code, ...(message === undefined ? {} : { message }) });
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
    const message = encodeFrame(frame);
    this.budget.spend(message.byteLength);
    this.#socket.send(message);
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
    // A frame refused for rate answers no call: the budget was too generous for this relay.
    if (frame.type === 'error' && frame.ref === undefined && frame.code === 'RELAY_ERR_RATE_LIMITED')
      this.budget.refused();
    switch (frame.type) {
      case 'ack':
      case 'sessionAccept':
      case 'renewed':
      case 'response':
        this.#calls.settle(frame);
        return;
      case 'error':
        if (frame.stream !== undefined) {
          const refusal = { ...frame, stream: frame.stream };
          runHandler(this.#events, () => this.#events.streamRefused?.(refusal));
        }
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
      case 'streamOpen':
      case 'streamData':
      case 'streamWindow':
      case 'streamClose':
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
    this.budget.release();
    this.#markGone();
    runHandler(this.#events, () => this.#events.closed?.(closedCode, why));
  }
}

function linkClosed(message: string = ERROR_MESSAGES.AGENT_ERR_LINK_CLOSED): DmzError {
  return new DmzError('AGENT_ERR_LINK_CLOSED', message);
}

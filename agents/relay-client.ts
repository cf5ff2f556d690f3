/**
 * An agent's connection to the relay: mutually authenticated TLS, the protocol handshake, pings,
 * and promise-shaped calls for sessions, subscriptions and requests. Both roles use it.
 */
import { WebSocket } from 'ws';
import { CLOSE_CODE } from '../relay/protocol/close-codes.ts';
import { decodeFrame, encodeFrame } from '../relay/protocol/codec.ts';
import { DmzError, isErrorCode, type ErrorCode } from '../relay/protocol/errors.ts';
import type { ToAgentFrame, ToAgentFrameOf, ToRelayFrame } from '../relay/protocol/frames.ts';
import { encodePointBatch } from './points/batch.ts';
import {
  KEY_EXCHANGE_GROUPS,
  MAX_FRAME_BYTES,
  MAX_U32,
  MIN_TLS_VERSION,
  SUBPROTOCOL,
} from '../relay/protocol/limits.ts';

export interface RelayClientOptions {
  /** `wss://host:port/v1/agent` */
  readonly url: string;
  readonly certPem: string;
  readonly keyPem: string;
  /** The relay's CA: the only trust anchor for the relay's server certificate. */
  readonly caPem: string;
  readonly software?: string;
  /** How long to wait for the TLS handshake and the relay's welcome. */
  readonly connectTimeoutMs?: number;
}

export type Welcome = ToAgentFrameOf<'welcome'>;
export type SessionOffer = ToAgentFrameOf<'sessionOpen'>;
export type OpenedSession = ToAgentFrameOf<'sessionAccept'>;
export type Delivery = ToAgentFrameOf<'deliver'>;
export type IncomingRequest = ToAgentFrameOf<'request'>;

export interface RelayClientHandlers {
  /** OT side: accept (true) or refuse (false) a session the relay offers. Default: accept. */
  onSessionOffer?: (offer: SessionOffer) => boolean;
  /** Answer a request; throw a DmzError to answer with its code. Default: refuse. */
  onRequest?: (request: IncomingRequest) => Promise<Uint8Array> | Uint8Array;
  onFrame?: (frame: ToAgentFrame) => void;
  onClose?: (code: number, reason: string) => void;
  /**
   * A handler above threw. The client catches it, so one bad frame handler cannot take the agent
   * down, and carries on (a throwing onSessionOffer refuses the session). Default: ignore.
   */
  onHandlerError?: (error: unknown) => void;
}

/** Raised when the relay answers a call with an error; `code` is the relay's stable code. */
export class RelayCallError extends DmzError {
  constructor(code: ErrorCode, message: string) {
    super(code, message);
    this.name = 'RelayCallError';
  }
}

interface Pending<T> {
  resolve(value: T): void;
  reject(error: Error): void;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

export class RelayClient {
  readonly welcome: Welcome;
  readonly #socket: WebSocket;
  readonly #handlers: RelayClientHandlers;
  readonly #acks = new Map<number, Pending<ToAgentFrame>>();
  readonly #responses = new Map<number, Pending<Uint8Array>>();
  #nextRef = 1;
  #closed = false;

  private constructor(socket: WebSocket, welcome: Welcome, handlers: RelayClientHandlers) {
    this.#socket = socket;
    this.welcome = welcome;
    this.#handlers = handlers;
    socket.on('message', (data: Buffer) => this.#receive(data));
    socket.on('close', (code: number, reason: Buffer) => this.#onClose(code, reason.toString()));
  }

  static async connect(
    options: RelayClientOptions,
    handlers: RelayClientHandlers = {},
  ): Promise<RelayClient> {
    const socket = new WebSocket(options.url, SUBPROTOCOL, {
      cert: options.certPem,
      key: options.keyPem,
      ca: options.caPem,
      minVersion: MIN_TLS_VERSION,
      ecdhCurve: KEY_EXCHANGE_GROUPS,
      maxPayload: MAX_FRAME_BYTES,
      perMessageDeflate: false,
      handshakeTimeout: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    });
    return new Promise<RelayClient>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.terminate();
        reject(new Error('relay did not welcome us in time'));
      }, options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS);
      const fail = (error: Error) => {
        clearTimeout(timer);
        reject(error);
      };
      socket.once('error', fail);
      socket.once('close', (code: number, reason: Buffer) =>
        fail(new Error(`relay closed the connection (${code} ${reason.toString()})`)),
      );
      socket.once('open', () => {
        socket.send(encodeFrame({ type: 'hello', software: options.software ?? 'dmz-agent' }));
      });
      // ws emits every frame of a chunk synchronously: the client's listeners must be on the socket
      // before this handler returns, or frames sent right after the welcome (and a close) are lost.
      socket.once('message', (data: Buffer) => {
        clearTimeout(timer);
        socket.removeAllListeners();
        socket.on('error', () => undefined); // surfaced through 'close'
        let welcome: Welcome;
        try {
          const frame = decodeFrame(data, 'toAgent');
          if (frame.type !== 'welcome') throw new Error(`expected welcome, got ${frame.type}`);
          welcome = frame;
        } catch (error) {
          socket.terminate();
          reject(error instanceof Error ? error : new Error(String(error)));
          return;
        }
        resolve(new RelayClient(socket, welcome, handlers));
      });
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes queued for the relay but not yet written to the network. */
  get bufferedBytes(): number {
    return this.#socket.bufferedAmount;
  }

  send(frame: ToRelayFrame): void {
    this.sendRaw(encodeFrame(frame));
  }

  /** Sends bytes as one binary message, valid or not (tests of the relay's decoder use it). */
  sendRaw(data: Uint8Array): void {
    if (this.#closed) throw new DmzError('RELAY_ERR_SESSION_CLOSED', 'connection to relay is closed');
    this.#socket.send(data, { binary: true });
  }

  /** IT side: asks the relay for a session with an OT agent under a topic filter. */
  async openSession(peer: string, filter: string): Promise<OpenedSession> {
    const ref = this.#ref();
    const accepted = await this.#call(ref, { type: 'sessionOpen', ref, peer, filter });
    if (accepted.type !== 'sessionAccept')
      throw new DmzError('RELAY_ERR_INVALID_FRAME', 'relay acked a session open');
    return accepted;
  }

  closeSession(session: number): void {
    this.send({ type: 'sessionClose', session });
  }

  async subscribe(session: number, filter: string, resume?: Uint8Array): Promise<void> {
    const ref = this.#ref();
    await this.#call(ref, {
      type: 'subscribe',
      ref,
      session,
      filter,
      ...(resume === undefined ? {} : { resume }),
    });
  }

  async unsubscribe(session: number, filter: string): Promise<void> {
    const ref = this.#ref();
    await this.#call(ref, { type: 'unsubscribe', ref, session, filter });
  }

  /** Asks the relay to certify a fresh key for this agent's identity (CSR in PEM). */
  async renew(csr: string): Promise<{ certificate: string; ca: string }> {
    const ref = this.#ref();
    const renewed = await this.#call(ref, { type: 'renew', ref, csr });
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
    this.send({
      type: 'publish',
      topic,
      seq,
      count,
      points: batch,
      ...(session === undefined ? {} : { session }),
    });
  }

  /** Sends a request through a session; resolves with the response payload. */
  request(session: number, topic: string, payload: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    const id = this.#ref();
    return new Promise((resolve, reject) => {
      this.#responses.set(id, { resolve, reject });
      this.send({ type: 'request', session, id, topic, timeoutMs, payload });
    });
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.#socket.once('close', () => resolve());
      this.#socket.close(CLOSE_CODE.goingAway, 'agent closing');
    });
  }

  #ref(): number {
    const ref = this.#nextRef;
    this.#nextRef = ref === MAX_U32 ? 1 : ref + 1;
    return ref;
  }

  #call(ref: number, frame: ToRelayFrame): Promise<ToAgentFrame> {
    return new Promise((resolve, reject) => {
      this.#acks.set(ref, { resolve, reject });
      this.send(frame);
    });
  }

  #receive(data: Buffer): void {
    let frame: ToAgentFrame;
    try {
      frame = decodeFrame(data, 'toAgent');
    } catch {
      this.#socket.close(CLOSE_CODE.protocolError, 'RELAY_ERR_MALFORMED_FRAME');
      return;
    }
    this.#callHandler(() => this.#handlers.onFrame?.(frame));
    switch (frame.type) {
      case 'ack':
      case 'sessionAccept':
      case 'renewed':
        this.#settle(this.#acks, frame.ref, (pending) => pending.resolve(frame));
        return;
      case 'error':
        if (frame.ref !== undefined) {
          this.#settle(this.#acks, frame.ref, (pending) =>
            pending.reject(callError(frame.code, frame.message)),
          );
        }
        return;
      case 'response':
        this.#settle(this.#responses, frame.id, (pending) =>
          frame.error === undefined
            ? pending.resolve(frame.payload ?? new Uint8Array())
            : pending.reject(callError(frame.error.code, frame.error.message)),
        );
        return;
      case 'ping':
        this.send({ type: 'pong', nonce: frame.nonce });
        return;
      case 'sessionOpen': {
        const accept = this.#callHandler(() => this.#handlers.onSessionOffer?.(frame) ?? true) ?? false;
        this.send(
          accept
            ? { type: 'sessionAccept', session: frame.session }
            : { type: 'sessionClose', session: frame.session },
        );
        return;
      }
      case 'request':
        this.#answer(frame);
        return;
      case 'welcome':
      case 'sessionClose':
      case 'sessionLease':
      case 'subscribe':
      case 'unsubscribe':
      case 'deliver':
      case 'dropped':
      case 'pong':
        return; // onFrame has seen it; nothing to settle.
    }
  }

  #answer(request: IncomingRequest): void {
    const respond = (body: Omit<ToAgentFrameOf<'response'>, 'type' | 'session' | 'id'>) => {
      if (!this.#closed) this.send({ type: 'response', session: request.session, id: request.id, ...body });
    };
    const handler = this.#handlers.onRequest;
    if (handler === undefined) {
      respond({ error: { code: 'RELAY_ERR_FORBIDDEN', message: 'this agent answers no requests' } });
      return;
    }
    Promise.resolve()
      .then(() => handler(request))
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

  #settle<T>(table: Map<number, Pending<T>>, key: number, action: (pending: Pending<T>) => void): void {
    const pending = table.get(key);
    if (pending === undefined) return;
    table.delete(key);
    action(pending);
  }

  #onClose(code: number, reason: string): void {
    this.#closed = true;
    const error = callError(
      isErrorCode(reason) ? reason : 'RELAY_ERR_SESSION_CLOSED',
      `connection closed (${code} ${reason})`,
    );
    for (const pending of [...this.#acks.values(), ...this.#responses.values()]) pending.reject(error);
    this.#acks.clear();
    this.#responses.clear();
    this.#callHandler(() => this.#handlers.onClose?.(code, reason));
  }

  /** Runs a user handler inside a ws event; returns undefined if it threw. */
  #callHandler<T>(handler: () => T): T | undefined {
    try {
      return handler();
    } catch (error) {
      try {
        this.#handlers.onHandlerError?.(error);
      } catch {
        // The error reporter failed too; nothing is left to tell.
      }
      return undefined;
    }
  }
}

function callError(code: string, message: string): RelayCallError {
  return new RelayCallError(isErrorCode(code) ? code : 'RELAY_ERR_INTERNAL', message);
}

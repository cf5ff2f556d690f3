/**
 * One tunnel stream at one end: a local TCP socket (the IT client at the entrance, the target at
 * the exit) joined to a stream of the relay link. The same state machine serves both ends:
 *
 *   opening --(credit from the peer: the exit's first grant is its accept)--> open
 *   open: socket -> link within the send credit; link -> socket within the receive window
 *   half-close: the socket's EOF becomes our `end` after the last byte; the peer's `end` becomes
 *     the socket's FIN (sockets are allowHalfOpen); both ends, and the socket closed: finished
 *   abort: a socket error, a protocol breach, the peer's streamClose, the session or link gone:
 *     the socket is reset (the client sees a prompt RST, never a hang), the stream finished
 *
 * Bounds: what this end holds for a stream is at most one window of bytes received and not yet
 * written to the socket (ReceiveWindow.buffered) plus what one socket read brought in and the
 * credit does not cover yet; the socket is paused meanwhile. While the link holds more than its
 * bulk bound, every stream pauses its socket (StreamLink.writable): one bound per connection.
 */
import type { Socket } from 'node:net';
import type { DmzError, ErrorCode } from '../../relay/protocol/errors.ts';
import { ReceiveWindow, SendCredit } from './credit.ts';

/** What a stream needs of the link, through the mux (stream-mux.ts). */
export interface StreamLink {
  readonly maxChunk: number;
  sendData(data: Uint8Array, end: boolean): void;
  grant(credit: number): void;
  abort(code: ErrorCode, message?: string): void;
  /** False while the link holds more than its bulk bound. */
  writable(): boolean;
  /** Calls `resume` once the link is writable again. */
  whenWritable(resume: () => void): void;
}

/** How a stream ended: `end` (both directions half-closed), or the code of whoever aborted it. */
export type StreamOutcome = string;

export interface TunnelStreamOptions {
  readonly session: number;
  readonly id: number;
  readonly service: string;
  /** The agent at the other end (for logs). */
  readonly peer: string;
  readonly window: number;
  readonly link: StreamLink;
  /** The code for a failure of this end's socket (client or target). */
  readonly socketFailure: ErrorCode;
  /** Milliseconds to wait before `bytes` more may pass (a service's bytes/s budget), or 0. */
  readonly pace?: (bytes: number) => number;
  readonly onFinished: (stream: TunnelStream, outcome: StreamOutcome) => void;
  readonly now?: () => number;
}

export class TunnelStream {
  readonly session: number;
  readonly id: number;
  readonly service: string;
  readonly peer: string;
  readonly openedAt: number;
  state: 'opening' | 'open' | 'closed' = 'opening';
  /** The peer granted credit once: at the entrance, the OT side accepted the stream. */
  accepted = false;
  /** Bytes from the socket sent to the peer, and from the peer written to the socket. */
  bytesSent = 0;
  bytesReceived = 0;
  readonly #options: TunnelStreamOptions;
  readonly #credit = new SendCredit();
  readonly #window: ReceiveWindow;
  #socket: Socket | undefined;
  readonly #outgoing: Buffer[] = [];
  #outgoingBytes = 0;
  #socketEnded = false;
  #socketClosed = false;
  #sentEnd = false;
  #receivedEnd = false;
  #paced: NodeJS.Timeout | undefined;
  #waitingForLink = false;

  constructor(options: TunnelStreamOptions) {
    this.#options = options;
    this.session = options.session;
    this.id = options.id;
    this.service = options.service;
    this.peer = options.peer;
    this.openedAt = (options.now ?? Date.now)();
    this.#window = new ReceiveWindow(options.window);
  }

  /**
   * Both directions have ended (our `end` sent, the peer's received): the relay has forgotten the
   * stream, and a refusal of a late frame of ours (a grant still in flight) means nothing.
   */
  get halfClosedBothWays(): boolean {
    return this.#sentEnd && this.#receivedEnd;
  }

  /** Bytes this end holds for the stream: received and not yet written out, read and not yet sent. */
  get bufferedBytes(): number {
    return this.#window.buffered + this.#outgoingBytes;
  }

  /** The local socket; it is read only as far as the credit goes. */
  attach(socket: Socket): void {
    this.#socket = socket;
    socket.pause();
    socket.on('data', (chunk: Buffer) => {
      this.#outgoing.push(chunk);
      this.#outgoingBytes += chunk.byteLength;
      this.#send();
    });
    socket.on('end', () => {
      this.#socketEnded = true;
      this.#send();
    });
    socket.on('error', () => this.abort(this.#options.socketFailure));
    socket.on('close', () => {
      this.#socketClosed = true;
      if (this.state === 'closed') return;
      // Closed without both half-closes done: the socket went away under the stream.
      if (!this.#socketEnded) this.abort(this.#options.socketFailure);
      else this.#finishIfDone();
    });
    this.#send();
  }

  /**
   * The peer granted credit: at the entrance, the exit's first grant is its accept; at the exit,
   * the entrance's window from streamOpen, granted once the target is connected.
   */
  granted(credit: number): void {
    if (this.state === 'closed') return;
    this.state = 'open';
    this.accepted = true;
    this.#credit.grant(credit);
    this.#send();
  }

  /** Bytes from the peer, and its half-close when `end`. */
  received(data: Uint8Array, end: boolean): void {
    const socket = this.#socket;
    if (this.state === 'closed' || socket === undefined) return;
    let credit: number;
    try {
      credit = this.#window.received(data.byteLength);
    } catch (error) {
      this.abort((error as DmzError).code, (error as DmzError).message);
      return;
    }
    this.bytesReceived += data.byteLength;
    if (data.byteLength > 0) {
      socket.write(data, () => {
        if (this.state === 'closed') return;
        // What the frame spent, at least MIN_STREAM_FRAME_CREDIT, is the peer's to spend again.
        const grant = this.#window.consumed(credit);
        if (grant > 0) this.#grant(grant);
      });
    }
    if (end) {
      this.#receivedEnd = true;
      socket.end();
    }
  }

  /** Aborts both directions: tells the peer (through the relay), resets the socket. */
  abort(code: ErrorCode, message?: string): void {
    if (this.state === 'closed') return;
    this.#options.link.abort(code, message);
    this.#close(code);
  }

  /** The peer, the relay, or the loss of the session or link ended the stream: no frame to send. */
  ended(code: string): void {
    this.#close(code);
  }

  #close(outcome: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearTimeout(this.#paced);
    const socket = this.#socket;
    if (socket !== undefined && !socket.destroyed) socket.resetAndDestroy();
    this.#options.onFinished(this, outcome);
  }

  /** Socket bytes to the link, as far as credit, the link's bound and the pace allow. */
  #send(): void {
    const socket = this.#socket;
    if (this.state !== 'open' || socket === undefined || this.#paced !== undefined) return;
    const { link } = this.#options;
    while (this.#outgoingBytes > 0) {
      if (!link.writable()) {
        if (!this.#waitingForLink) {
          this.#waitingForLink = true;
          link.whenWritable(() => {
            this.#waitingForLink = false;
            this.#send();
          });
        }
        break;
      }
      const head = this.#outgoing[0] as Buffer;
      const bytes = this.#credit.take(Math.min(head.byteLength, link.maxChunk));
      if (bytes === 0) break;
      if (bytes === head.byteLength) this.#outgoing.shift();
      else this.#outgoing[0] = head.subarray(bytes);
      this.#outgoingBytes -= bytes;
      this.bytesSent += bytes;
      link.sendData(head.subarray(0, bytes), false);
      const wait = this.#options.pace?.(bytes) ?? 0;
      if (wait > 0) {
        this.#paced = setTimeout(() => {
          this.#paced = undefined;
          this.#send();
        }, wait);
        break;
      }
    }
    if (this.#outgoingBytes > 0 || this.#paced !== undefined) {
      socket.pause();
    } else if (this.#socketEnded) {
      if (!this.#sentEnd) {
        this.#sentEnd = true;
        link.sendData(new Uint8Array(0), true);
        this.#finishIfDone();
      }
    } else {
      socket.resume();
    }
  }

  #grant(credit: number): void {
    // After the peer's end no byte comes any more: credit would be for nothing.
    if (this.#receivedEnd) return;
    const wait = this.#options.pace?.(credit) ?? 0;
    if (wait === 0) {
      this.#options.link.grant(credit);
      return;
    }
    setTimeout(() => {
      if (this.state !== 'closed') this.#options.link.grant(credit);
    }, wait).unref();
  }

  #finishIfDone(): void {
    if (this.state === 'closed' || !this.#sentEnd || !this.#receivedEnd || !this.#socketClosed) return;
    this.state = 'closed';
    this.#options.onFinished(this, 'end');
  }
}

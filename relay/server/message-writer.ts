/**
 * Writes the relay's binary WebSocket messages to an agent's socket: a message may come in pieces
 * (a deliver frame is a small head and a points batch shared by every subscriber), written back to
 * back behind one frame header so no piece is copied into a frame of its own, and everything sent
 * to one socket within one turn of the event loop leaves in one `writev`: one TLS write, full
 * records, one system call for a burst of deliveries instead of one per message.
 *
 * ws owns the socket and writes its own frames (pongs, the close frame) to it. It writes them
 * synchronously, in call order, as long as its sender never queues: it queues only while it
 * compresses (the agent listener turns permessage-deflate off) or reads a Blob (the relay sends
 * none). So messages from here and from ws cannot interleave; after ws has begun closing, nothing
 * is written from here (RFC 6455 section 5.5.1: no data frame after a close frame).
 *
 * Tunnel bulk (stream data) has a lane of its own: it waits here, not in the socket, and joins a
 * turn's writes only after everything else that turn sent, and only while the socket holds less
 * than `bulkShare` bytes. So live points and control frames never queue behind more than that
 * much tunnel data, and the live-data queue limit (outbound.ts) never counts the lane. What the
 * lane holds is bounded by the stream credit the relay enforces (tunnels.ts), not here.
 */
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { binaryFrameHeader } from '../protocol/websocket-frame.ts';

/**
 * A turn's writes to one socket are held back until this many bytes are waiting, then go out at
 * once: four full TLS records (RFC 8446 section 5.1, 2^14 bytes each). Fewer, larger writes pay off
 * up to a few records; past that, bytes are better in the kernel than waiting here.
 */
export const COALESCE_BYTES = 64 * 1024;

/**
 * Tunnel bytes the socket may hold in front of whatever comes next: 256 KiB is a few milliseconds
 * of a gigabit link, and enough in the kernel's path to keep a bulk stream at full speed between
 * two 'drain' events. Never more than a quarter of the live-data queue limit.
 */
export const BULK_SOCKET_BYTES = 256 * 1024;

export class MessageWriter {
  readonly #webSocket: WebSocket;
  readonly #socket: Duplex;
  readonly #bulkShare: number;
  #flush: NodeJS.Immediate | undefined;
  #held = 0;
  readonly #bulk: (readonly Uint8Array[])[] = [];
  #bulkBytes = 0;
  #awaitingDrain = false;
  readonly #uncork = (): void => {
    this.#flush = undefined;
    this.#held = 0;
    this.#writeBulk();
    this.#socket.uncork();
  };
  readonly #drained = (): void => {
    this.#awaitingDrain = false;
    if (this.#bulk.length > 0) this.#hold();
  };

  /**
   * `socket` is the stream `webSocket` was established on (the TLS socket of the upgrade);
   * `maxQueuedBytes` the live-data queue limit, of which bulk takes at most a quarter.
   */
  constructor(webSocket: WebSocket, socket: Duplex, maxQueuedBytes: number) {
    this.#webSocket = webSocket;
    this.#socket = socket;
    this.#bulkShare = Math.min(BULK_SOCKET_BYTES, Math.floor(maxQueuedBytes / 4));
  }

  /** Bytes of tunnel bulk waiting in the lane (not yet in the socket). */
  get bulkBytes(): number {
    return this.#bulkBytes;
  }

  /** One binary message of tunnel bulk, in pieces; it leaves after this turn's other messages. */
  sendBulk(message: readonly Uint8Array[]): void {
    if (this.#webSocket.readyState !== this.#webSocket.OPEN) return;
    this.#bulk.push(message);
    for (const piece of message) this.#bulkBytes += piece.byteLength;
    if (!this.#awaitingDrain) this.#hold();
  }

  /** One binary message: `message` whole, or its pieces in order. Dropped once ws is closing. */
  send(message: Uint8Array | readonly Uint8Array[]): void {
    if (this.#webSocket.readyState !== this.#webSocket.OPEN) return;
    this.#hold();
    this.#held += this.#write(message);
    if (this.#held >= COALESCE_BYTES) {
      clearImmediate(this.#flush);
      this.#uncork();
    }
  }

  /**
   * Held until the event loop has handled every read that was ready (setImmediate runs after the
   * poll phase): what a burst of publishes routes to this socket leaves together.
   */
  #hold(): void {
    if (this.#flush !== undefined) return;
    this.#socket.cork();
    this.#flush = setImmediate(this.#uncork);
  }

  #write(message: Uint8Array | readonly Uint8Array[]): number {
    let length = 0;
    if (message instanceof Uint8Array) {
      length = message.byteLength;
      this.#socket.write(binaryFrameHeader(length));
      this.#socket.write(message);
    } else {
      for (const piece of message) length += piece.byteLength;
      this.#socket.write(binaryFrameHeader(length));
      for (const piece of message) this.#socket.write(piece);
    }
    return length;
  }

  /**
   * Bulk joins the socket while it holds less than the share; the rest waits for 'drain' (the
   * share is above the socket's high-water mark, so a write that reached it asked for one).
   */
  #writeBulk(): void {
    if (this.#webSocket.readyState !== this.#webSocket.OPEN) {
      this.#bulk.length = 0;
      this.#bulkBytes = 0;
      return;
    }
    let next = 0;
    while (next < this.#bulk.length && this.#socket.writableLength < this.#bulkShare) {
      const message = this.#bulk[next++] as readonly Uint8Array[];
      this.#bulkBytes -= this.#write(message);
    }
    this.#bulk.splice(0, next);
    if (this.#bulk.length > 0 && !this.#awaitingDrain) {
      this.#awaitingDrain = true;
      this.#socket.once('drain', this.#drained);
    }
  }
}

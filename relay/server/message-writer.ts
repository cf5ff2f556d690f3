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
 */
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';

/** RFC 6455 section 5.2: FIN set, opcode 0x2 (binary); a server's frames are never masked. */
const FIN_BINARY = 0x82;
/** Payload lengths up to 125 fit the 7-bit field; up to 65535 take a 16-bit extension (126). */
const MAX_SHORT_LENGTH = 125;
const MAX_MEDIUM_LENGTH = 0xffff;
const MEDIUM_LENGTH_MARK = 126;
const LONG_LENGTH_MARK = 127;

/** The header of one unfragmented, unmasked binary frame carrying `length` bytes (RFC 6455 5.2). */
export function binaryFrameHeader(length: number): Buffer {
  if (length <= MAX_SHORT_LENGTH) return Buffer.of(FIN_BINARY, length);
  if (length <= MAX_MEDIUM_LENGTH)
    return Buffer.of(FIN_BINARY, MEDIUM_LENGTH_MARK, length >>> 8, length & 0xff);
  const header = Buffer.allocUnsafe(10);
  header[0] = FIN_BINARY;
  header[1] = LONG_LENGTH_MARK;
  // 64-bit length, most significant bit 0; frames are bounded far below 2^53.
  header.writeUIntBE(0, 2, 2);
  header.writeUIntBE(length, 4, 6);
  return header;
}

/**
 * A turn's writes to one socket are held back until this many bytes are waiting, then go out at
 * once: four full TLS records (RFC 8446 section 5.1, 2^14 bytes each). Fewer, larger writes pay off
 * up to a few records; past that, bytes are better in the kernel than waiting here.
 */
export const COALESCE_BYTES = 64 * 1024;

export class MessageWriter {
  readonly #webSocket: WebSocket;
  readonly #socket: Duplex;
  #flush: NodeJS.Immediate | undefined;
  #held = 0;
  readonly #uncork = (): void => {
    this.#flush = undefined;
    this.#held = 0;
    this.#socket.uncork();
  };

  /** `socket` is the stream `webSocket` was established on (the TLS socket of the upgrade). */
  constructor(webSocket: WebSocket, socket: Duplex) {
    this.#webSocket = webSocket;
    this.#socket = socket;
  }

  /** One binary message: `message` whole, or its pieces in order. Dropped once ws is closing. */
  send(message: Uint8Array | readonly Uint8Array[]): void {
    if (this.#webSocket.readyState !== this.#webSocket.OPEN) return;
    // Held until the event loop has handled every read that was ready (setImmediate runs after
    // the poll phase): what a burst of publishes routes to this socket leaves together.
    if (this.#flush === undefined) {
      this.#socket.cork();
      this.#flush = setImmediate(this.#uncork);
    }
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
    this.#held += length;
    if (this.#held >= COALESCE_BYTES) {
      clearImmediate(this.#flush);
      this.#uncork();
    }
  }
}

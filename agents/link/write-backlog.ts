/**
 * What the link has queued for the relay and not yet written, and waiting for it to shrink: ws
 * queues whatever it is given, so an OT agent that publishes faster than the network takes must
 * wait for its backlog rather than grow its memory. The wait ends on the TLS socket's 'drain',
 * never a polling loop.
 */
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';

interface Waiter {
  readonly maxBufferedBytes: number;
  readonly resolve: () => void;
}

const NOTHING = Buffer.alloc(0);

export class WriteBacklog {
  readonly #socket: WebSocket;
  readonly #transport: Socket;
  readonly #waiters = new Set<Waiter>();
  #flushing = false;
  #released = false;

  constructor(socket: WebSocket, transport: Socket) {
    this.#socket = socket;
    this.#transport = transport;
    transport.on('drain', () => this.#settle());
  }

  /** Bytes queued for the relay, not yet handed to the network (ws's own queue and the socket's). */
  get bytes(): number {
    return this.#socket.bufferedAmount;
  }

  /** Resolves once at most `maxBufferedBytes` are queued (at once if so already), or on release(). */
  whenAtMost(maxBufferedBytes: number): Promise<void> {
    if (this.#released || this.bytes <= maxBufferedBytes) return Promise.resolve();
    return new Promise((resolve) => {
      this.#waiters.add({ maxBufferedBytes, resolve });
      this.#watch();
    });
  }

  /** The link closed: nothing will be written any more, and nobody may wait for it. */
  release(): void {
    this.#released = true;
    for (const waiter of this.#waiters) waiter.resolve();
    this.#waiters.clear();
  }

  #settle(): void {
    const bytes = this.bytes;
    for (const waiter of this.#waiters) {
      if (bytes <= waiter.maxBufferedBytes) {
        this.#waiters.delete(waiter);
        waiter.resolve();
      }
    }
    if (this.#waiters.size > 0) this.#watch();
  }

  /**
   * A socket emits 'drain' only after a write found its buffer past the high-water mark. Below that
   * mark (a waiter asking for less than 16 KiB), an empty write stands in: writes complete in order,
   * so its callback runs once everything queued before it is written, and it puts no byte on the wire.
   */
  #watch(): void {
    if (this.#transport.writableNeedDrain || this.#flushing) return;
    if (this.#transport.destroyed || !this.#transport.writable) return; // 'close' releases the waiters
    this.#flushing = true;
    this.#transport.write(NOTHING, () => {
      this.#flushing = false;
      this.#settle();
    });
  }
}

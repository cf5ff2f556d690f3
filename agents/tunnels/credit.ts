/**
 * Credit-based flow control of one stream, the arithmetic both ends share (and the relay repeats,
 * relay/server/tunnels.ts): the receiver grants bytes, the sender spends them, and nothing is
 * sent that was not granted. HTTP/2 (RFC 9113 section 5.2) and QUIC (RFC 9000 section 4) work so;
 * the grant here is always an increment, never an absolute offset.
 */
import { DmzError } from '../../relay/protocol/errors.ts';
import { MAX_STREAM_WINDOW_BYTES, WINDOW_UPDATE_FRACTION } from '../../relay/protocol/streams.ts';

/** What this end may still send: credit granted by the peer and not spent. */
export class SendCredit {
  #available = 0;

  get available(): number {
    return this.#available;
  }

  /** The peer granted `bytes` more (the relay already refused a grant beyond the window). */
  grant(bytes: number): void {
    this.#available = Math.min(this.#available + bytes, MAX_STREAM_WINDOW_BYTES);
  }

  /** Spends up to `wanted` bytes; returns how many may be sent now. */
  take(wanted: number): number {
    const taken = Math.min(wanted, this.#available);
    this.#available -= taken;
    return taken;
  }
}

/**
 * The receiving side: `window` bytes granted at open, and granted again as what arrived is
 * consumed (written out to the local socket), in increments of at least half the window so a
 * bulk transfer costs one window frame per half window, not one per chunk.
 */
export class ReceiveWindow {
  readonly window: number;
  /** Bytes the peer may still send. */
  #outstanding: number;
  /** Bytes that arrived and were consumed, not granted again yet. */
  #consumed = 0;

  constructor(window: number) {
    this.window = window;
    this.#outstanding = window;
  }

  /** Bytes that arrived and are not consumed yet: what this end holds for the stream. */
  get buffered(): number {
    return this.window - this.#outstanding - this.#consumed;
  }

  /** `bytes` arrived; a peer that sends beyond its credit breaks the protocol. */
  received(bytes: number): void {
    if (bytes > this.#outstanding) {
      throw new DmzError(
        'AGENT_ERR_TUNNEL_PROTOCOL',
        `${bytes} bytes arrived against ${this.#outstanding} of credit`,
      );
    }
    this.#outstanding -= bytes;
  }

  /** `bytes` were consumed; returns the credit to grant now (0: not worth a frame yet). */
  consumed(bytes: number): number {
    this.#consumed += bytes;
    if (this.#consumed < this.window * WINDOW_UPDATE_FRACTION) return 0;
    const grant = this.#consumed;
    this.#consumed = 0;
    this.#outstanding += grant;
    return grant;
  }
}

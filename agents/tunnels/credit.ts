/**
 * Credit-based flow control of one stream, the arithmetic both ends share (and the relay repeats,
 * relay/server/tunnels.ts): the receiver grants bytes, the sender spends them, and nothing is
 * sent that was not granted. HTTP/2 (RFC 9113 section 5.2) and QUIC (RFC 9000 section 4) work so;
 * the grant here is always an increment, never an absolute offset. A frame spends its bytes, but
 * at least MIN_STREAM_FRAME_CREDIT (streams.ts), so credit bounds the frames in flight as well.
 */
import { DmzError } from '../../relay/protocol/errors.ts';
import {
  MAX_STREAM_WINDOW_BYTES,
  streamFrameCredit,
  WINDOW_UPDATE_FRACTION,
} from '../../relay/protocol/streams.ts';

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

  /**
   * Spends the credit of one frame of up to `wanted` bytes; returns how many bytes it may carry
   * (0: not even a frame's least credit is left).
   */
  take(wanted: number): number {
    const taken = Math.min(wanted, this.#available);
    const spent = streamFrameCredit(taken);
    if (taken === 0 || spent > this.#available) return 0;
    this.#available -= spent;
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
  /** Credit the peer may still spend. */
  #outstanding: number;
  /** Credit of frames that arrived and were consumed, not granted again yet. */
  #consumed = 0;

  constructor(window: number) {
    this.window = window;
    this.#outstanding = window;
  }

  /** Credit of what arrived and is not consumed yet: what this end holds for the stream. */
  get buffered(): number {
    return this.window - this.#outstanding - this.#consumed;
  }

  /**
   * A frame of `bytes` arrived; returns the credit it spent (streamFrameCredit), to be handed to
   * consumed() once the bytes are out. A peer that sends beyond its credit breaks the protocol.
   */
  received(bytes: number): number {
    const credit = streamFrameCredit(bytes);
    if (credit > this.#outstanding) {
      throw new DmzError(
        'AGENT_ERR_TUNNEL_PROTOCOL',
        `${bytes} bytes (${credit} of credit) arrived against ${this.#outstanding} of credit`,
      );
    }
    this.#outstanding -= credit;
    return credit;
  }

  /** Frames of `credit` were consumed; returns the credit to grant now (0: not worth a frame yet). */
  consumed(credit: number): number {
    this.#consumed += credit;
    if (this.#consumed < this.window * WINDOW_UPDATE_FRACTION) return 0;
    const grant = this.#consumed;
    this.#consumed = 0;
    this.#outstanding += grant;
    return grant;
  }
}

/**
 * Everything the relay sends to one agent goes through here, so that no buffer grows without
 * bound. Live data is dropped (and counted, and reported to the consumer) once the agent's unsent
 * bytes pass the configured queue limit; an agent that stays that slow is disconnected.
 */
import { encodeFrame } from '../protocol/codec.ts';
import { DmzError } from '../protocol/errors.ts';
import type { ToAgentFrame } from '../protocol/frames.ts';
import type { AgentLink } from './link.ts';

export interface OutboundLimits {
  readonly maxQueuedBytes: number;
  readonly slowConsumerGraceMs: number;
}

/**
 * Control frames (acks, errors, leases) are never dropped, but they cannot grow the queue past
 * this multiple of the live-data limit: an agent that reads nothing at all is cut at once.
 */
const CONTROL_HEADROOM_FACTOR = 2;

export class Outbound {
  readonly #link: AgentLink;
  readonly #limits: OutboundLimits;
  readonly #now: () => number;
  readonly #onTooSlow: () => void;
  #cutScheduled = false;
  /** When the current run of drops began; undefined while the consumer keeps up. */
  #droppingSince: number | undefined;

  constructor(link: AgentLink, limits: OutboundLimits, now: () => number, onTooSlow: () => void) {
    this.#link = link;
    this.#limits = limits;
    this.#now = now;
    this.#onTooSlow = onTooSlow;
  }

  /**
   * Sends a frame on another agent's behalf (a session offer, a subscribe or unsubscribe, a request
   * or response), or throws RELAY_ERR_PEER_BUSY when it does not fit within this agent's queue
   * limit. The sender's doing must never push this agent towards a slow-consumer cut (which would
   * end every other session it has), so such frames get no share of the control headroom. Callers
   * forward first and change the relay's state only once this returned.
   */
  forward(frame: ToAgentFrame): void {
    const encoded = encodeFrame(frame);
    if (this.#link.bufferedBytes() + encoded.byteLength > this.#limits.maxQueuedBytes) {
      throw new DmzError('RELAY_ERR_PEER_BUSY');
    }
    this.#link.send(encoded);
  }

  /** The relay's own frames (acks, errors, leases, pings, closes) and answers to the agent itself. */
  sendControl(frame: ToAgentFrame): void {
    this.#link.send(encodeFrame(frame));
    if (this.#link.bufferedBytes() > this.#limits.maxQueuedBytes * CONTROL_HEADROOM_FACTOR) this.#tooSlow();
  }

  /**
   * Sends one encoded deliver frame (`points` points, in the pieces deliveryFrames makes) to one
   * session, or drops it when the consumer is behind. `undelivered` is the session's count of
   * dropped points not yet reported; the caller keeps it per session.
   * Returns the number of points dropped by this call (0 when sent).
   */
  sendLive(session: number, deliver: readonly Uint8Array[], points: number, undelivered: number): number {
    if (this.#link.bufferedBytes() > this.#limits.maxQueuedBytes) {
      const now = this.#now();
      this.#droppingSince ??= now;
      if (now - this.#droppingSince > this.#limits.slowConsumerGraceMs) this.#tooSlow();
      return points;
    }
    this.#droppingSince = undefined;
    if (undelivered > 0) this.#link.send(encodeFrame({ type: 'dropped', session, points: undelivered }));
    this.#link.send(deliver);
    return 0;
  }

  /**
   * The cut runs after the current handler, never inside it: a handler that sent to this agent
   * must not find its session ended under it halfway through.
   */
  #tooSlow(): void {
    if (this.#cutScheduled) return;
    this.#cutScheduled = true;
    queueMicrotask(this.#onTooSlow);
  }

  /** Called periodically: a consumer that stopped reading is cut even when no new data arrives. */
  checkStalled(): void {
    if (this.#droppingSince === undefined) return;
    if (this.#link.bufferedBytes() <= this.#limits.maxQueuedBytes) this.#droppingSince = undefined;
    else if (this.#now() - this.#droppingSince > this.#limits.slowConsumerGraceMs) this.#tooSlow();
  }
}

/**
 * The bridge's way from a sink write to PUBACKs. Writes wait in order; the one at the front of
 * the unsent ones is rendered into messages (by the format, for the current connection) when the
 * messages before it are sent, and messages go out while the window has room (so many messages
 * and bytes sent and not acknowledged). A write settles once every message of it is acknowledged
 * on the connection that sent it, and writes settle in the order they came: the cursor moves only
 * over what the broker holds.
 *
 * A broken connection forgets what it had in flight: every write not settled is rendered again on
 * the next connection and sent again whole (the broker may then get some messages twice: at least
 * once). When writes wait and the broker has acknowledged nothing for WRITE_DEADLINE_MS (it is
 * away, or stuck), every write is given up (AGENT_ERR_SINK_BUSY): the consumer starts again from
 * the acknowledged cursor and the OT log replays the rest, so an outage of the broker holds a
 * bounded amount in memory and never holds up the agent's stop for long. A broker that is only
 * slow keeps acknowledging, and nothing is given up however long the queue.
 */
import type { SinkEntry } from '../sink.ts';
import { sinkError } from '../sink-errors.ts';
import type { BridgeFormat, BridgeMessage } from './bridge-format.ts';

/**
 * Writes are given up after this long without a PUBACK (see above). Long enough for a loaded
 * broker to acknowledge a message; short enough that a stop during an outage (which waits for the
 * consumers' writes) ends well inside the agent's 15 s stop bound.
 */
export const WRITE_DEADLINE_MS = 5_000;
/** The outbox is compacted once this many sent messages sit at its head. */
const COMPACT_AFTER = 1024;

export interface PipelineLink {
  readonly connected: boolean;
  publish(message: BridgeMessage, acknowledged: () => void): boolean;
}

/** An OT agent's log epochs (sink.ts noteLogEpochs), held in order with the writes around it. */
export interface Origin {
  readonly agent: string;
  readonly epochs: readonly string[];
}

export interface PipelineEvents {
  /** A write is acknowledged whole: its cursors (or its origin) hold. Called in write order. */
  acknowledged(advance: ReadonlyMap<string, number>, entries: number, origin: Origin | undefined): void;
  /** Every write not settled was given up: what they claimed is not held. */
  abandoned(): void;
}

export interface WindowLimits {
  readonly messages: number;
  readonly bytes: number;
}

interface PendingWrite {
  readonly entries: readonly SinkEntry[];
  readonly advance: ReadonlyMap<string, number>;
  readonly origin: Origin | undefined;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
  rendered: boolean;
  /** Messages of the current rendering not yet acknowledged. */
  outstanding: number;
  settled: boolean;
}

interface Outgoing {
  readonly message: BridgeMessage;
  readonly bytes: number;
  readonly write: PendingWrite | undefined;
}

export interface PipelineStats {
  readonly pendingEntries: number;
  readonly inFlight: number;
  readonly inFlightBytes: number;
  readonly published: number;
  readonly acknowledged: number;
  /**
   * Messages in flight when a connection broke: the broker may have them, and their writes are
   * sent again whole (at least once).
   */
  readonly interrupted: number;
  /** Writes given up after WRITE_DEADLINE_MS without a PUBACK. */
  readonly expired: number;
}

export class PublishPipeline {
  readonly #link: PipelineLink;
  readonly #format: BridgeFormat;
  readonly #window: WindowLimits;
  readonly #events: PipelineEvents;
  readonly #now: () => number;
  /** Writes not settled, in order; those before #nextToRender are rendered. */
  #writes: PendingWrite[] = [];
  #nextToRender = 0;
  #outbox: Outgoing[] = [];
  #outboxHead = 0;
  #connection = 0;
  #inFlight = 0;
  #inFlightBytes = 0;
  #pendingEntries = 0;
  #published = 0;
  #acknowledged = 0;
  #interrupted = 0;
  #expired = 0;
  /** When the broker last acknowledged something, or the first write began to wait. */
  #progressAt: number;

  constructor(
    link: PipelineLink,
    format: BridgeFormat,
    window: WindowLimits,
    events: PipelineEvents,
    now: () => number,
  ) {
    this.#link = link;
    this.#format = format;
    this.#window = window;
    this.#events = events;
    this.#now = now;
    this.#progressAt = now();
  }

  get pendingEntries(): number {
    return this.#pendingEntries;
  }

  /** A write, or (with no entries) an origin, settled in order with the writes before it. */
  accept(
    entries: readonly SinkEntry[],
    advance: ReadonlyMap<string, number>,
    origin?: Origin,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      // A write that finds none waiting has the whole deadline, however long the sink was idle.
      if (this.#writes.length === 0) this.#progressAt = this.#now();
      this.#writes.push({
        entries,
        advance,
        origin,
        resolve,
        reject,
        rendered: false,
        outstanding: 0,
        settled: false,
      });
      this.#pendingEntries += entries.length;
      this.pump();
    });
  }

  /** Messages of the bridge's own (status, births), sent after what is rendered already. */
  send(messages: readonly BridgeMessage[]): void {
    for (const message of messages) this.#push(message, undefined);
    this.pump();
  }

  /** A new connection: nothing of an earlier one is in flight. */
  connected(first: readonly BridgeMessage[]): void {
    this.send(first);
  }

  disconnected(): void {
    this.#connection++;
    this.#interrupted += this.#inFlight;
    this.#inFlight = 0;
    this.#inFlightBytes = 0;
    this.#outbox = [];
    this.#outboxHead = 0;
    for (const write of this.#writes) {
      write.rendered = false;
      write.outstanding = 0;
    }
    this.#nextToRender = 0;
    this.#format.disconnected();
  }

  /** Sends what the window has room for. */
  pump(): void {
    while (this.#link.connected) {
      const next = this.#outbox[this.#outboxHead];
      if (next === undefined) {
        const write = this.#writes[this.#nextToRender];
        if (write === undefined) break;
        this.#nextToRender++;
        this.#render(write);
        continue;
      }
      const full =
        this.#inFlight >= this.#window.messages ||
        (this.#inFlight > 0 && this.#inFlightBytes + next.bytes > this.#window.bytes);
      if (full) break;
      const connection = this.#connection;
      if (!this.#link.publish(next.message, () => this.#acknowledgedOne(next, connection))) break;
      this.#outboxHead++;
      this.#inFlight++;
      this.#inFlightBytes += next.bytes;
      this.#published++;
    }
    if (this.#outboxHead >= COMPACT_AFTER && this.#outboxHead * 2 >= this.#outbox.length) {
      this.#outbox = this.#outbox.slice(this.#outboxHead);
      this.#outboxHead = 0;
    }
    this.#settle();
  }

  /** Gives up every write once they waited WRITE_DEADLINE_MS without a PUBACK. */
  expire(): void {
    if (this.#writes.length === 0 || this.#now() - this.#progressAt < WRITE_DEADLINE_MS) return;
    const error = sinkError('busy', 'the broker acknowledges nothing; the points waiting are replayed later');
    this.#expired += this.#writes.length;
    this.#abandon(error);
    this.#events.abandoned();
  }

  /** Refuses every write not settled (the sink is closing). */
  close(error: unknown): void {
    this.#abandon(error);
  }

  stats(): PipelineStats {
    return {
      pendingEntries: this.#pendingEntries,
      inFlight: this.#inFlight,
      inFlightBytes: this.#inFlightBytes,
      published: this.#published,
      acknowledged: this.#acknowledged,
      interrupted: this.#interrupted,
      expired: this.#expired,
    };
  }

  #render(write: PendingWrite): void {
    const messages = this.#format.render(write.entries);
    write.rendered = true;
    write.outstanding = messages.length;
    for (const message of messages) this.#push(message, write);
  }

  #push(message: BridgeMessage, write: PendingWrite | undefined): void {
    const bytes = message.payload.byteLength + Buffer.byteLength(message.topic);
    this.#outbox.push({ message, bytes, write });
  }

  #acknowledgedOne(outgoing: Outgoing, connection: number): void {
    if (connection !== this.#connection) return;
    this.#inFlight--;
    this.#inFlightBytes -= outgoing.bytes;
    this.#acknowledged++;
    this.#progressAt = this.#now();
    const { write } = outgoing;
    if (write !== undefined && !write.settled) write.outstanding--;
    this.pump();
  }

  #settle(): void {
    for (;;) {
      const write = this.#writes[0];
      if (write === undefined || !write.rendered || write.outstanding > 0) return;
      this.#writes.shift();
      this.#nextToRender--;
      write.settled = true;
      this.#pendingEntries -= write.entries.length;
      this.#events.acknowledged(write.advance, write.entries.length, write.origin);
      write.resolve();
    }
  }

  #abandon(error: unknown): void {
    const writes = this.#writes;
    this.#writes = [];
    this.#nextToRender = 0;
    this.#pendingEntries = 0;
    // Rendered messages stay in the outbox: a format numbers its messages (Sparkplug's seq), and
    // leaving some out would look like loss to a host. They count for nothing any more.
    for (const write of writes) {
      write.settled = true;
      write.reject(error);
    }
  }
}

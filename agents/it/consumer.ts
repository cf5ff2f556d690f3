/**
 * One IT consumer: a session with one OT agent under one filter, feeding one sink, resuming from
 * the sink's own cursor. Whatever happens on the way (relay restarts, the OT agent's restarts, a
 * `dropped` notice, a batch that arrives after a hole), the sink sees every point of every stream
 * exactly once and in order: StreamOrder keeps only what is next, and anything missing is fetched
 * again from the OT agent's durable log in replay rounds, each asked for with the current cursor.
 * A session's points are taken only once its first round's origin named the OT log's epochs
 * (after any resets, where that log no longer has what the sink holds), and the cursor names them.
 */
import { DoublingCount } from '../runtime/doubling-count.ts';
import type { Logger } from 'pino';
import { reconnectDelayMs, type BackoffLimits } from '../link/backoff.ts';
import { encodeResumeCursor, MIN_REPLAY_WINDOW } from '../points/resume-cursor.ts';
import { DmzError } from '../../relay/protocol/errors.ts';
import { topicMatches } from '../../relay/protocol/topics.ts';
import type { Sink } from './sinks/sink.ts';
import { StreamOrder, type DeliveredBatch } from './stream-order.ts';

/** Points a replay round carries at most: about a second of a sink's writing, a few MiB. */
export const DEFAULT_REPLAY_WINDOW = 65_536;
/**
 * A round not ended within this long is asked for again, from the cursor: its end marker may be
 * lost, or the OT agent failed it. Counted from the round's start, not from the last delivery:
 * live data keeps arriving during a round and must not keep a dead round open. A round longer
 * than this (a window the link cannot carry in time) is simply continued by the next one.
 */
export const ROUND_DEADLINE_MS = 30_000;
/**
 * Entries handed to the sink and not yet durable above which live batches are left to replay:
 * about 7 MiB of JSON lines, under what a sink lets wait (jsonl-limits.ts MAX_PENDING_BYTES).
 */
export const MAX_ENTRIES_IN_FLIGHT = 65_536;

export interface ConsumerLink {
  readonly closed: boolean;
  openSession(peer: string, filter: string): Promise<{ readonly session: number }>;
  closeSession(session: number): void;
  subscribe(session: number, filter: string, resume?: Uint8Array): Promise<void>;
  unsubscribe(session: number, filter: string): Promise<void>;
}

export interface ConsumerOptions {
  readonly name: string;
  /** The OT agent's name. */
  readonly peer: string;
  readonly filter: string;
  readonly sink: Sink;
  readonly logger: Logger;
  readonly window?: number;
  readonly random?: () => number;
  /** Waits before a session is asked for again (default: the link's reconnect limits). */
  readonly backoff?: BackoffLimits;
  /** The sink's storage failed: it takes nothing more until reopened. */
  readonly onStorageFailure?: (error: unknown) => void;
}

/** over-limit: the relay's announced session limits leave this consumer out (session-limits.ts). */
export type ConsumerState = 'offline' | 'opening' | 'replaying' | 'live' | 'over-limit';

export interface ConsumerStats {
  readonly state: ConsumerState;
  readonly session: number | undefined;
  readonly rounds: number;
  readonly pointsWritten: number;
  readonly gapsWritten: number;
  /** Streams taken back because the OT agent's log no longer had what the sink held. */
  readonly resetsWritten: number;
  readonly holes: number;
  readonly droppedNotices: number;
  readonly sinkFailures: number;
  /** Why the last session open or replay round failed (a cursor too large, a refusal). */
  readonly lastError: string | undefined;
}

export class Consumer {
  readonly name: string;
  readonly #options: ConsumerOptions;
  readonly #order: StreamOrder;
  readonly #maxWindow: number;
  /** Points the next round asks for: the configured window, halved while rounds are dropped. */
  #window: number;
  #link: ConsumerLink | undefined;
  #session: number | undefined;
  #opening = false;
  #roundOpen = false;
  #roundRequested = false;
  /** The OT log's epochs the held points came from, newest first, for the cursor. */
  #epochs: readonly string[];
  /** Whether this session's origin came: until then its points are left to replay. */
  #originKnown = false;
  #roundTimer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #inFlight = 0;
  readonly #undecodable = new DoublingCount();
  #writes: Promise<void> = Promise.resolve();
  #failed = false;
  #closed = false;
  /** Why the relay's limits leave this consumer out, while they do. */
  #overLimit: string | undefined;
  #stats: { -readonly [Key in keyof Omit<ConsumerStats, 'state' | 'session'>]: ConsumerStats[Key] } = {
    rounds: 0,
    pointsWritten: 0,
    gapsWritten: 0,
    resetsWritten: 0,
    holes: 0,
    droppedNotices: 0,
    sinkFailures: 0,
    lastError: undefined,
  };

  constructor(options: ConsumerOptions) {
    this.name = options.name;
    this.#maxWindow = options.window ?? DEFAULT_REPLAY_WINDOW;
    this.#window = this.#maxWindow;
    this.#options = options;
    this.#order = new StreamOrder(options.sink.cursors());
    this.#epochs = options.sink.logEpochs(options.peer);
  }

  /** A link is up: open the session and resume. */
  attach(link: ConsumerLink): void {
    if (this.#closed) return;
    this.detach();
    this.#overLimit = undefined;
    this.#link = link;
    void this.#open(link, 0);
  }

  /**
   * A link is up, but its relay's limits leave this consumer no session: it asks for none (the
   * relay would refuse it, or take one of the others'), and says why, logging it once per reason.
   */
  leaveOut(error: DmzError): void {
    if (this.#closed) return;
    this.detach();
    if (this.#overLimit !== error.message)
      this.#options.logger.error({ consumer: this.name, err: error }, error.message);
    this.#overLimit = error.message;
    this.#stats.lastError = error.message;
  }

  /** The link is gone; the session with it. */
  detach(): void {
    this.#link = undefined;
    this.#session = undefined;
    this.#endRound();
    clearTimeout(this.#retryTimer);
  }

  handles(session: number): boolean {
    return session === this.#session;
  }

  delivered(batch: DeliveredBatch): void {
    if (this.#failed) return;
    let admission;
    try {
      // A sink that is behind gets nothing more held in memory: the log replays it later.
      // Gap records come only in replay rounds: outside one, a gap is not believed (a live batch
      // claiming a gap to 2^53 would otherwise end the stream for this consumer).
      const room = this.#inFlight <= MAX_ENTRIES_IN_FLIGHT && this.#originKnown;
      admission = this.#order.admit(batch, room, this.#roundOpen);
    } catch (error) {
      // Logged at 1, 2, 4, 8, ... so a peer sending garbage cannot fill the disk with warnings.
      if (this.#undecodable.note()) {
        this.#options.logger.warn(
          { err: error, topic: batch.topic, undecodable: this.#undecodable.count },
          'a delivered batch does not decode',
        );
      }
      this.#noteHole();
      return;
    }
    if (admission.entries.length > 0) this.#write(admission.entries);
    if (admission.origin !== undefined) this.#noteOrigin(admission.origin);
    if (admission.hole) this.#noteHole();
    if (admission.replayEnd !== undefined) {
      // A round that ended whole earns a larger next one, up to the configured window.
      this.#window = Math.min(this.#maxWindow, this.#window * 2);
      this.#endRound();
      if (admission.replayEnd.more || this.#order.hasHoles()) this.#requestRound();
    }
  }

  /**
   * The relay dropped points of this session for us: a round fetches them. A round running now
   * is given up for a new one at once: the relay drops a round's records and its end marker like
   * live points, and a round waiting for a marker that was dropped would wait for ever while live
   * data keeps its silence timer from running out. The new round, from the cursor, replaces the
   * old one at the OT agent (same session and filter).
   */
  dropped(): void {
    this.#stats.droppedNotices++;
    // The relay could not hold what this round sent: ask for less next time (halving, as TCP
    // does with its window), so rounds fit what the path holds and end with a marker.
    if (this.#roundOpen) this.#window = Math.max(MIN_REPLAY_WINDOW, Math.floor(this.#window / 2));
    this.#endRound();
    this.#requestRound();
  }

  sessionClosed(code: string, message: string): void {
    const link = this.#link;
    this.#session = undefined;
    this.#endRound();
    if (link === undefined || link.closed || this.#closed) return;
    this.#options.logger.info({ consumer: this.name, code, message }, 'session closed; reopening');
    this.#retry(() => void this.#open(link, 1), 1);
  }

  stats(): ConsumerStats {
    let state: ConsumerState = 'offline';
    if (this.#link !== undefined) state = this.#session === undefined ? 'opening' : 'live';
    if (state === 'live' && (this.#roundOpen || this.#roundRequested)) state = 'replaying';
    if (this.#overLimit !== undefined) state = 'over-limit';
    return { state, session: this.#session, ...this.#stats };
  }

  /** Stops consuming and waits for what was handed to the sink. */
  async close(): Promise<void> {
    this.#closed = true;
    const link = this.#link;
    const session = this.#session;
    this.detach();
    if (link !== undefined && session !== undefined && !link.closed) link.closeSession(session);
    await this.#writes;
  }

  async #open(link: ConsumerLink, attempt: number): Promise<void> {
    if (this.#opening || link !== this.#link || link.closed) return;
    this.#opening = true;
    try {
      const { session } = await link.openSession(this.#options.peer, this.#options.filter);
      if (link !== this.#link || link.closed) return;
      this.#session = session;
      this.#originKnown = false;
      this.#options.logger.info({ consumer: this.name, session }, 'session open; resuming');
      await this.#round(link, session, true);
    } catch (error) {
      if (link !== this.#link || link.closed) return;
      this.#options.logger.info({ consumer: this.name, err: error }, 'session not open; retrying');
      // A session opened and then refused its subscription is given back, or retries would
      // pile sessions up at the relay until the pair's limit locks every consumer out.
      if (this.#session !== undefined) link.closeSession(this.#session);
      this.#session = undefined;
      this.#endRound();
      this.#stats.lastError = error instanceof Error ? error.message : String(error);
      this.#retry(() => void this.#open(link, attempt + 1), attempt);
    } finally {
      this.#opening = false;
    }
  }

  /** Asks the OT agent for what this consumer lacks, from its current cursor. */
  async #round(link: ConsumerLink, session: number, first: boolean): Promise<void> {
    const { filter } = this.#options;
    const positions = new Map<string, number>();
    for (const [topic, seq] of this.#order.positions())
      if (topicMatches(filter, topic)) positions.set(topic, seq);
    const resume = encodeResumeCursor(this.#window, positions, this.#epochs);
    this.#roundOpen = true;
    this.#stats.rounds++;
    this.#armRoundTimer();
    // The relay forwards a subscribe only when the filter is new in the session: a later round
    // first takes the subscription back (what arrives in between is fetched by the round).
    if (!first) await link.unsubscribe(session, filter);
    await link.subscribe(session, filter, resume);
  }

  #requestRound(): void {
    if (this.#roundOpen || this.#roundRequested || this.#session === undefined) return;
    this.#roundRequested = true;
    // The cursor goes out once what was admitted so far is written, so a round never runs ahead
    // of the sink by more than one window.
    void this.#writes.then(() => {
      this.#roundRequested = false;
      const link = this.#link;
      const session = this.#session;
      if (link === undefined || link.closed || session === undefined || this.#roundOpen) return;
      this.#round(link, session, false).catch((error: unknown) => {
        this.#endRound();
        if (link.closed || session !== this.#session) return;
        this.#options.logger.warn({ consumer: this.name, err: error }, 'replay round refused; retrying');
        this.#stats.lastError = error instanceof Error ? error.message : String(error);
        this.#retry(() => this.#requestRound(), 1);
      });
    });
  }

  #noteHole(): void {
    this.#stats.holes++;
    if (!this.#roundOpen) this.#requestRound();
  }

  #write(entries: Parameters<Sink['write']>[0]): void {
    this.#inFlight += entries.length;
    const written = this.#options.sink.write(entries);
    // Its outcome is handled below, once the writes before it settled; a write the sink refuses at
    // once (AGENT_ERR_SINK_BUSY) while an earlier one is on its way to disk would otherwise be an
    // unhandled rejection meanwhile, which ends the process.
    written.catch(() => undefined);
    this.#writes = this.#writes.then(() =>
      written.then(
        () => {
          this.#inFlight -= entries.length;
          for (const entry of entries) {
            if (entry.kind === 'point') this.#stats.pointsWritten++;
            else if (entry.kind === 'gap') this.#stats.gapsWritten++;
            else this.#stats.resetsWritten++;
          }
        },
        (error: unknown) => {
          this.#inFlight -= entries.length;
          this.#sinkFailed(error);
        },
      ),
    );
  }

  /**
   * The round named the OT log's epochs: this session's points count from now on, and the sink
   * keeps the epochs in order with its writes, so no point it holds is of a newer epoch than it names.
   */
  #noteOrigin(epochs: readonly string[]): void {
    this.#originKnown = true;
    if (epochs.join() === this.#epochs.join()) return;
    this.#epochs = epochs;
    const noted = this.#options.sink.noteLogEpochs(this.#options.peer, epochs);
    noted.catch(() => undefined);
    this.#writes = this.#writes.then(() =>
      noted.then(undefined, (error: unknown) => this.#sinkFailed(error)),
    );
  }

  /**
   * What was admitted may not be on disk: start again from what the sink holds. A sink that is
   * only busy (its queue is full) is a hole like any other; one whose storage failed takes no
   * more writes until it is reopened, which the runtime does by restarting (onStorageFailure).
   */
  #sinkFailed(error: unknown): void {
    this.#stats.sinkFailures++;
    if (this.#failed) return;
    this.#failed = true;
    const code = error instanceof DmzError ? error.code : undefined;
    if (code === 'AGENT_ERR_SINK_BUSY') {
      this.#options.logger.info({ consumer: this.name }, 'sink busy; what it refused is replayed later');
    } else {
      this.#options.logger.error({ consumer: this.name, err: error }, 'sink write failed');
      if (code === 'AGENT_ERR_SINK_FAILED') this.#options.onStorageFailure?.(error);
    }
    void this.#writes.then(() => {
      this.#order.reset(this.#options.sink.cursors());
      this.#epochs = this.#options.sink.logEpochs(this.#options.peer);
      this.#failed = false;
      this.#endRound();
      this.#retry(() => this.#requestRound(), 1);
    });
  }

  #armRoundTimer(): void {
    clearTimeout(this.#roundTimer);
    this.#roundTimer = setTimeout(() => {
      this.#roundOpen = false;
      this.#requestRound();
    }, ROUND_DEADLINE_MS);
    this.#roundTimer.unref();
  }

  #endRound(): void {
    this.#roundOpen = false;
    clearTimeout(this.#roundTimer);
  }

  #retry(action: () => void, attempt: number): void {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(
      action,
      reconnectDelayMs(attempt, this.#options.backoff, this.#options.random),
    );
    this.#retryTimer.unref();
  }
}

/**
 * When replay rounds may run, per link to the relay rather than per round (audit of issue 6,
 * findings 7 and 8). The ReplayServer hands every round to the scheduler, which keeps one pacer
 * for each link:
 *
 * - at most `maxRoundsPerLink` rounds run at once; later ones wait, first come first served;
 * - running rounds share one byte budget: a round's whenWritable is a turn in one queue, and only
 *   the round whose turn it is sends (what it reads until its next whenWritable), so N rounds queue
 *   about what one round does, not N times that;
 * - the turn is the link's whenWritable, which also waits for room in the link's send budget (the
 *   rates the relay announced, agents/link/send-budget.ts), the budget live data and the
 *   publisher's catch-up spend from too: live and replay together stay under the relay's limits,
 *   taking turns frame by frame, and a round cuts its frames to what the budget lets through;
 * - a round of the same session and filter that comes within `minRoundIntervalMs` of the previous
 *   one's start waits out the rest of the interval, unless the previous one ended with more to
 *   replay (its consumer asks for the next window at once, by design).
 *
 * How a round ended the scheduler learns from the replay-end record the round sends, the record
 * its consumer reads, so the round's reading needs no other way to report it.
 */
import { decodePointBatch } from '../points/batch.ts';
import { decodeStreamRecord } from '../points/stream-record.ts';
import type { PublishingLink } from './publishing-link.ts';

/**
 * Rounds that run at once on one link. They share its byte budget, so more would add no
 * throughput; a few let a consumer that lacks little finish while another catches up on a lot.
 */
export const MAX_ROUNDS_PER_LINK = 4;
/**
 * The shortest time between the starts of two rounds of one session and filter, unless the first
 * ended with more. A consumer asks again sooner only after a hole or a dropped notice, which can
 * wait a second; a subscribe/unsubscribe storm then costs the OT agent one round a second per
 * subscription instead of one per frame pair (a round's first read walks a log segment).
 */
export const MIN_ROUND_INTERVAL_MS = 1000;

/** A round as the ReplayServer keeps it: cancelled once a newer subscribe, an unsubscribe or a closed session ends it. */
export interface ScheduledRound {
  readonly cancelled: boolean;
}

export interface ReplaySchedulerOptions {
  readonly maxRoundsPerLink?: number;
  readonly minRoundIntervalMs?: number;
}

export interface ReplaySchedulerStats {
  readonly running: number;
  readonly waiting: number;
}

export class ReplayScheduler {
  readonly #pacers = new WeakMap<PublishingLink, LinkPacer>();
  readonly #maxRounds: number;
  readonly #minIntervalMs: number;

  constructor(options: ReplaySchedulerOptions = {}) {
    this.#maxRounds = options.maxRoundsPerLink ?? MAX_ROUNDS_PER_LINK;
    this.#minIntervalMs = options.minRoundIntervalMs ?? MIN_ROUND_INTERVAL_MS;
  }

  /**
   * Runs `replay` for the round `key` (its session and filter) once the link lets it, with a link
   * whose whenWritable is the round's turn in the shared budget. Resolves without running it if
   * the round was cancelled, replaced by a newer one of the same key, or the link closed meanwhile.
   */
  run(
    link: PublishingLink,
    key: string,
    round: ScheduledRound,
    replay: (paced: PublishingLink) => Promise<void>,
  ): Promise<void> {
    let pacer = this.#pacers.get(link);
    if (pacer === undefined) {
      pacer = new LinkPacer(link, this.#maxRounds, this.#minIntervalMs);
      this.#pacers.set(link, pacer);
    }
    return pacer.run(key, round, replay);
  }

  /** Rounds of `link` running (admitted, until they end) and waiting to. */
  stats(link: PublishingLink): ReplaySchedulerStats {
    return this.#pacers.get(link)?.stats() ?? { running: 0, waiting: 0 };
  }
}

interface Waiting {
  readonly key: string;
  readonly round: ScheduledRound;
  readonly notBefore: number;
  readonly admit: (admitted: boolean) => void;
}

interface Turn {
  readonly round: ScheduledRound;
  /** The bound the round asked for; undefined for its first turn, which takes the link's last. */
  readonly bound: number | undefined;
  readonly go: () => void;
}

/** The start of the latest round of a key, and whether it ended with more to replay. */
interface Started {
  readonly at: number;
  more: boolean;
}

class LinkPacer {
  readonly #link: PublishingLink;
  readonly #maxRounds: number;
  readonly #minIntervalMs: number;
  readonly #started = new Map<string, Started>();
  readonly #waiting: Waiting[] = [];
  #timer: NodeJS.Timeout | undefined;
  #running = 0;
  readonly #turns: Turn[] = [];
  /** The round allowed to send now: until its next turn, or its end. */
  #holder: ScheduledRound | undefined;
  /** The turn whose whenWritable is pending at the link. */
  #draining: Turn | undefined;
  /** The bound rounds wait for at this link; a first turn waits for it too, once one is known. */
  #bound: number | undefined;

  constructor(link: PublishingLink, maxRounds: number, minIntervalMs: number) {
    this.#link = link;
    this.#maxRounds = maxRounds;
    this.#minIntervalMs = minIntervalMs;
  }

  async run(
    key: string,
    round: ScheduledRound,
    replay: (paced: PublishingLink) => Promise<void>,
  ): Promise<void> {
    if (!(await this.#admission(key, round))) return;
    const started: Started = { at: Date.now(), more: false };
    this.#started.set(key, started);
    try {
      await this.#turn(round, undefined);
      if (round.cancelled || this.#link.closed) return;
      await replay(this.#pacedLink(round, started));
    } finally {
      this.#running--;
      if (this.#holder === round) this.#holder = undefined;
      this.#admit();
      this.#pass();
    }
  }

  stats(): ReplaySchedulerStats {
    return { running: this.#running, waiting: this.#waiting.length };
  }

  /** Waits for a place among the running rounds; false if the round will not run. */
  #admission(key: string, round: ScheduledRound): Promise<boolean> {
    const now = Date.now();
    for (const [startedKey, { at }] of this.#started) {
      if (at + this.#minIntervalMs <= now) this.#started.delete(startedKey);
    }
    const previous = this.#started.get(key);
    const notBefore = previous === undefined || previous.more ? now : previous.at + this.#minIntervalMs;
    return new Promise((admit) => {
      const waiting: Waiting = { key, round, notBefore, admit };
      // A newer round of a key takes the older one's place: a consumer that asked again while it
      // waited (its own deadline ran out) does not go to the back.
      const older = this.#waiting.findIndex((other) => other.key === key);
      if (older === -1) this.#waiting.push(waiting);
      else this.#waiting.splice(older, 1, waiting)[0]?.admit(false);
      this.#admit();
    });
  }

  /** Starts what may start, first come first served; arms the timer for a round still in its interval. */
  #admit(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const now = Date.now();
    let nextAt = Infinity;
    for (let index = 0; index < this.#waiting.length;) {
      const waiting = this.#waiting[index] as Waiting;
      if (waiting.round.cancelled || this.#link.closed) {
        this.#waiting.splice(index, 1);
        waiting.admit(false);
      } else if (waiting.notBefore > now) {
        nextAt = Math.min(nextAt, waiting.notBefore);
        index++;
      } else if (this.#running < this.#maxRounds) {
        this.#waiting.splice(index, 1);
        // Counted here, not when the round's continuation runs, so one pass admits no more than fit.
        this.#running++;
        waiting.admit(true);
      } else {
        index++;
      }
    }
    if (nextAt !== Infinity) {
      this.#timer = setTimeout(() => this.#admit(), nextAt - now);
      this.#timer.unref();
    }
  }

  /** The round's next burst may go once its turn comes and the link took what came before. */
  #turn(round: ScheduledRound, bound: number | undefined): Promise<void> {
    if (this.#holder === round) this.#holder = undefined;
    if (bound !== undefined) this.#bound = bound;
    return new Promise((go) => {
      this.#turns.push({ round, bound, go });
      this.#pass();
    });
  }

  #pass(): void {
    // A cancelled round sends nothing more (it checks before every send), so it holds up no one.
    if (this.#holder?.cancelled) this.#holder = undefined;
    if (this.#holder !== undefined) return;
    const draining = this.#draining;
    if (draining !== undefined) {
      if (!draining.round.cancelled) return;
      this.#draining = undefined;
      draining.go();
    }
    for (let turn = this.#turns.shift(); turn !== undefined; turn = this.#turns.shift()) {
      if (turn.round.cancelled || this.#link.closed) {
        turn.go();
        continue;
      }
      const bound = turn.bound ?? this.#bound;
      if (bound === undefined) {
        this.#grant(turn);
        return;
      }
      this.#draining = turn;
      const writable = () => {
        if (this.#draining !== turn) return;
        this.#draining = undefined;
        this.#grant(turn);
      };
      this.#link.whenWritable(bound).then(writable, writable);
      return;
    }
  }

  #grant(turn: Turn): void {
    this.#holder = turn.round;
    turn.go();
  }

  /** The link as one round uses it: sends go straight through, whenWritable waits for its turn. */
  #pacedLink(round: ScheduledRound, started: Started): PublishingLink {
    const link = this.#link;
    const noteEnd = (record: Uint8Array | undefined) => {
      const more = replayEndMore(record);
      if (more !== undefined) started.more = more;
    };
    // A round cuts its frames by welcome.maxFrameBytes: on this link, the largest the budget takes.
    const welcome = { maxFrameBytes: link.budget.frameBytes };
    return {
      get closed() {
        return link.closed;
      },
      get bufferedBytes() {
        return link.bufferedBytes;
      },
      welcome,
      budget: link.budget,
      publish: (topic, seq, points, session) => {
        if (points.length === 1) noteEnd(points[0]);
        link.publish(topic, seq, points, session);
      },
      publishBatch: (topic, seq, batch, count, session) => {
        if (count === 1 && batch.byteLength <= REPLAY_END_BATCH_BYTES) noteEnd(decodePointBatch(batch, 1)[0]);
        link.publishBatch(topic, seq, batch, count, session);
      },
      whenWritable: (bound) => this.#turn(round, bound),
    };
  }
}

/** A batch of one replay-end record: its length prefix and the record's two bytes. */
const REPLAY_END_BATCH_BYTES = 3;

/** The replay-end record's `more`, or undefined if `record` is some other record. */
function replayEndMore(record: Uint8Array | undefined): boolean | undefined {
  if (record?.byteLength !== 2) return undefined;
  try {
    const decoded = decodeStreamRecord(record);
    return decoded.kind === 'replayEnd' ? decoded.more : undefined;
  } catch {
    // Not a record the round could have sent as its end; the consumer would not take it either.
    return undefined;
  }
}

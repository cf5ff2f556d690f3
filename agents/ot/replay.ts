/**
 * Replay on the OT side: when an IT consumer subscribes with its resume cursor, the OT agent sends
 * that session, in rounds, every logged point under the filter that the consumer lacks, then ends
 * the round with a replay-end record saying whether more is left. Gaps (points retention deleted)
 * go as explicit gap records, never as silence. The consumer asks for the next round by subscribing
 * again with its new cursor, so a round never outruns what the consumer has written down.
 *
 * A round first checks the cursor against the log's epochs (log/epochs.ts): where the consumer
 * holds points this log does not have (it was re-created, or restored from an older copy), a reset
 * record tells it to forget them and go on where the log does, so new points with old numbers are
 * never taken for duplicates. Then an origin record names the log's epochs, for the next cursor.
 *
 * A round shares the link with live data: it waits whenever more than REPLAY_BUFFERED_BYTES are
 * queued for the relay, so live points wait behind at most that much, and live appends never wait
 * for a round at all.
 */
import { encodePointBatch } from '../points/batch.ts';
import {
  decodeResumeCursor,
  MAX_CURSOR_EPOCHS,
  streamKey,
  type ResumeCursor,
} from '../points/resume-cursor.ts';
import { encodeGap, encodeOrigin, encodeReplayEnd, encodeReset } from '../points/stream-record.ts';
import { filterMeet, topicMatches } from '../../relay/protocol/topics.ts';
import { MAX_STREAMS_READ_RECORDS } from './log/limits.ts';
import type { ReadResult, StreamLog, StreamsCursor } from './log/stream-log.ts';
import { frameRuns } from './frame-batches.ts';
import type { PublishingLink } from './publishing-link.ts';
import { ReplayScheduler } from './replay-scheduler.ts';

/** Queued bytes above which a round pauses: about 10 ms of a gigabit link, ahead of live data. */
export const REPLAY_BUFFERED_BYTES = 1024 * 1024;
/** The level (a segment) that stands for a filter's wildcards in the replay-end record's topic. */
const MARKER_SEGMENT = '_replay';
/** A reset's reason for a stream the cursor holds and the log has never had. */
const UNKNOWN_STREAM = 'the OT log has no such stream';

export interface ReplayStats {
  readonly rounds: number;
  readonly pointsReplayed: number;
  readonly gaps: number;
  /** Streams told to forget what they held beyond the log (reset records sent). */
  readonly resets: number;
  readonly roundsActive: number;
}

/** What a round sends before it replays: where each stream the cursor lacks starts, and the resets. */
interface RoundPlan {
  readonly lacking: Map<string, number>;
  readonly resets: Uint8Array[];
}

export interface ReplayRequest {
  readonly session: number;
  readonly filter: string;
  readonly resume?: Uint8Array;
}

export class ReplayServer {
  readonly #log: StreamLog;
  readonly #agentName: string;
  readonly #onError: (error: unknown, request: ReplayRequest) => void;
  /** The round running per `session filter`: a newer subscribe replaces it. */
  readonly #rounds = new Map<string, { cancelled: boolean }>();
  /** When rounds may run and send, per link: concurrency, one shared byte budget, the restart interval. */
  readonly #scheduler: ReplayScheduler;
  /** Each stream's key in cursors (SHA-256 of its topic): at most the log's MAX_STREAMS entries. */
  readonly #streamKeys = new Map<string, string>();
  #roundsStarted = 0;
  #pointsReplayed = 0;
  #gaps = 0;
  #resets = 0;

  constructor(
    log: StreamLog,
    agentName: string,
    onError: (error: unknown, request: ReplayRequest) => void,
    scheduler = new ReplayScheduler(),
  ) {
    this.#scheduler = scheduler;
    this.#log = log;
    this.#agentName = agentName;
    this.#onError = onError;
  }

  /** A subscribe reached us: without a cursor it is live only; with one, a round starts. */
  subscribed(link: PublishingLink, request: ReplayRequest): void {
    const key = roundKey(request.session, request.filter);
    this.#cancel(key);
    if (request.resume === undefined) return;
    let cursor: ResumeCursor;
    try {
      cursor = decodeResumeCursor(request.resume);
    } catch (error) {
      this.#onError(error, request);
      return;
    }
    const round = { cancelled: false };
    this.#rounds.set(key, round);
    this.#roundsStarted++;
    this.#scheduler
      .run(link, key, round, (paced) => this.#replay(paced, request, cursor, round))
      .catch((error: unknown) => {
        if (!round.cancelled && !link.closed) this.#onError(error, request);
      })
      .finally(() => {
        if (this.#rounds.get(key) === round) this.#rounds.delete(key);
      });
  }

  unsubscribed(session: number, filter: string): void {
    this.#cancel(roundKey(session, filter));
  }

  sessionClosed(session: number): void {
    for (const key of [...this.#rounds.keys()]) {
      if (key.startsWith(`${session} `)) this.#cancel(key);
    }
  }

  /** The link is gone: every round with it. */
  linkClosed(): void {
    for (const key of [...this.#rounds.keys()]) this.#cancel(key);
  }

  stats(): ReplayStats {
    return {
      rounds: this.#roundsStarted,
      pointsReplayed: this.#pointsReplayed,
      gaps: this.#gaps,
      resets: this.#resets,
      roundsActive: this.#rounds.size,
    };
  }

  #cancel(key: string): void {
    const round = this.#rounds.get(key);
    if (round === undefined) return;
    round.cancelled = true;
    this.#rounds.delete(key);
  }

  async #replay(
    link: PublishingLink,
    request: ReplayRequest,
    cursor: ResumeCursor,
    round: { cancelled: boolean },
  ): Promise<void> {
    const { session, filter } = request;
    const live = () => !round.cancelled && !link.closed;
    const marker = markerTopic(filter, this.#agentName);
    const { lacking, resets } = this.#plan(filter, cursor);
    // Resets, then the origin, before any point: the consumer takes this session's points only
    // once the origin came, so none of them is measured against a position the log disowns.
    const origin = encodeOrigin(this.#log.epochs(MAX_CURSOR_EPOCHS));
    let first = true;
    for (const run of frameRuns([...resets, origin], link.welcome.maxFrameBytes)) {
      // Room before each frame but the first, as for points: the origin alone waits for nothing.
      if (!first) await link.whenWritable(REPLAY_BUFFERED_BYTES);
      if (!live()) return;
      link.publish(marker, 0, run, session);
      first = false;
    }
    this.#resets += resets.length;
    const more =
      lacking.size === 0 ? false : await this.#sendPasses(link, session, lacking, cursor.window, live);
    if (more === undefined || !live()) return;
    link.publishBatch(marker, 0, encodePointBatch([encodeReplayEnd(more)]), 1, session);
  }

  /**
   * Sends up to `window` points of what `lacking` asks for, in passes over the log in log order,
   * each continuing where the last stopped: a round costs the bytes of the range it sends, however
   * many streams share that range. Whether more is left; undefined if the round ended first.
   */
  async #sendPasses(
    link: PublishingLink,
    session: number,
    lacking: ReadonlyMap<string, number>,
    window: number,
    live: () => boolean,
  ): Promise<boolean | undefined> {
    let from: ReadonlyMap<string, number> | StreamsCursor = lacking;
    for (let budget = window; ;) {
      const pass = await this.#log.readStreams(from, Math.min(MAX_STREAMS_READ_RECORDS, budget));
      if (!live()) return undefined;
      for (const [topic, result] of pass.streams) {
        if (!(await this.#send(link, session, topic, result, live))) return undefined;
        budget -= result.records.length;
      }
      if (!pass.more) return false;
      if (budget === 0) return true;
      from = pass.next;
    }
  }

  /**
   * What the cursor lacks under `filter`: each stream with more than the cursor holds, and the
   * first sequence number it lacks; and a reset for each stream the cursor holds more of than is
   * this log's (a stream the log does not know at all goes on at 1). A stream at its head waits
   * for the next round; live data carries what it gets meanwhile.
   */
  #plan(filter: string, cursor: ResumeCursor): RoundPlan {
    const agreement = this.#log.agreement(cursor.epochs);
    const lacking = new Map<string, number>();
    const resets: Uint8Array[] = [];
    const matched = new Set<string>();
    for (const topic of this.#log.streams()) {
      if (!topicMatches(filter, topic)) continue;
      const key = this.#streamKey(topic);
      let held = cursor.positions.get(key) ?? 0;
      if (cursor.positions.has(key)) matched.add(key);
      const limit = held === 0 ? 0 : agreement.limit(topic);
      if (held > limit) {
        resets.push(encodeReset(key, limit + 1, agreement.reason));
        held = limit;
      }
      if (held + 1 <= this.#log.lastSeq(topic)) lacking.set(topic, held + 1);
    }
    // A stream a re-created log has not seen again yet is reset for the log's reason, not its own.
    const unknown = agreement.wholeLog === true ? agreement.reason : UNKNOWN_STREAM;
    for (const [key, held] of cursor.positions) {
      if (held > 0 && !matched.has(key)) resets.push(encodeReset(key, 1, unknown));
    }
    return { lacking, resets };
  }

  /** A stream's key in cursors, hashed once per stream rather than once per stream per round. */
  #streamKey(topic: string): string {
    let key = this.#streamKeys.get(topic);
    if (key === undefined) {
      key = streamKey(topic);
      this.#streamKeys.set(topic, key);
    }
    return key;
  }

  /**
   * One stream's share of a pass: its gap first, then its records in frames, each send followed by
   * a wait for room on the link. False once the round is over.
   */
  async #send(
    link: PublishingLink,
    session: number,
    topic: string,
    result: ReadResult,
    live: () => boolean,
  ): Promise<boolean> {
    if (result.gap !== undefined) {
      const gap = encodePointBatch([encodeGap(result.gap.to, result.gap.reason)]);
      link.publishBatch(topic, result.gap.from, gap, 1, session);
      this.#gaps++;
      await link.whenWritable(REPLAY_BUFFERED_BYTES);
      if (!live()) return false;
    }
    let seq = result.records[0]?.seq ?? result.nextSeq;
    for (const run of frameRuns(
      result.records.map((record) => record.bytes),
      link.welcome.maxFrameBytes,
    )) {
      link.publish(topic, seq, run, session);
      seq += run.length;
      this.#pointsReplayed += run.length;
      await link.whenWritable(REPLAY_BUFFERED_BYTES);
      if (!live()) return false;
    }
    return true;
  }
}

function roundKey(session: number, filter: string): string {
  return `${session} ${filter}`;
}

/**
 * A topic inside the subscription's filter and this agent's namespace, for the replay-end record:
 * the filter with each wildcard level replaced by MARKER_SEGMENT. A consumer knows the record by
 * its kind, not its topic, so a real stream of that name is not confused with it.
 */
export function markerTopic(filter: string, agentName: string): string {
  const scoped = filterMeet(filter, `${agentName}/#`) ?? filter;
  return scoped
    .split('/')
    .map((level) => (level === '+' || level === '#' ? MARKER_SEGMENT : level))
    .join('/');
}

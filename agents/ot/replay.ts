/**
 * Replay on the OT side: when an IT consumer subscribes with its resume cursor, the OT agent sends
 * that session, in rounds, every logged point under the filter that the consumer lacks, then ends
 * the round with a replay-end record saying whether more is left. Gaps (points retention deleted)
 * go as explicit gap records, never as silence. The consumer asks for the next round by subscribing
 * again with its new cursor, so a round never outruns what the consumer has written down.
 *
 * A round shares the link with live data: it waits whenever more than REPLAY_BUFFERED_BYTES are
 * queued for the relay, so live points wait behind at most that much, and live appends never wait
 * for a round at all.
 */
import { encodePointBatch } from '../points/batch.ts';
import { decodeResumeCursor, streamKey, type ResumeCursor } from '../points/resume-cursor.ts';
import { encodeGap, encodeReplayEnd } from '../points/stream-record.ts';
import { filterMeet, topicMatches } from '../../relay/protocol/topics.ts';
import type { StreamLog } from './log/stream-log.ts';
import { frameRuns } from './frame-batches.ts';
import type { PublishingLink } from './publishing-link.ts';
import { MAX_POINTS_PER_FRAME } from '../../relay/protocol/limits.ts';

/** Queued bytes above which a round pauses: about 10 ms of a gigabit link, ahead of live data. */
export const REPLAY_BUFFERED_BYTES = 1024 * 1024;
/** The level (a segment) that stands for a filter's wildcards in the replay-end record's topic. */
const MARKER_SEGMENT = '_replay';

export interface ReplayStats {
  readonly rounds: number;
  readonly pointsReplayed: number;
  readonly gaps: number;
  readonly roundsActive: number;
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
  #roundsStarted = 0;
  #pointsReplayed = 0;
  #gaps = 0;

  constructor(log: StreamLog, agentName: string, onError: (error: unknown, request: ReplayRequest) => void) {
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
    this.#replay(link, request, cursor, round)
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
    let budget = cursor.window;
    let more = false;
    for (const topic of this.#log.streams()) {
      if (!topicMatches(filter, topic)) continue;
      let next = (cursor.positions.get(streamKey(topic)) ?? 0) + 1;
      while (live() && next <= this.#log.lastSeq(topic)) {
        if (budget === 0) {
          more = true;
          break;
        }
        const result = await this.#log.read(topic, next, Math.min(MAX_POINTS_PER_FRAME, budget));
        if (!live()) return;
        if (result.gap !== undefined) {
          const gap = encodePointBatch([encodeGap(result.gap.to, result.gap.reason)]);
          link.publishBatch(topic, result.gap.from, gap, 1, session);
          this.#gaps++;
        }
        const records = result.records.map((record) => record.bytes);
        let seq = result.records[0]?.seq ?? next;
        for (const run of frameRuns(records, link.welcome.maxFrameBytes)) {
          link.publish(topic, seq, run, session);
          seq += run.length;
        }
        budget -= records.length;
        this.#pointsReplayed += records.length;
        next = result.nextSeq;
        await link.whenWritable(REPLAY_BUFFERED_BYTES);
      }
      if (more) break;
    }
    if (!live()) return;
    const marker = markerTopic(filter, this.#agentName);
    link.publishBatch(marker, 0, encodePointBatch([encodeReplayEnd(more)]), 1, session);
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

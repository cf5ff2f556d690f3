/**
 * The OT agent's one way in for points: a source hands over readings of a topic, the publisher
 * encodes them, appends them to the durable log and, once they are durable, sends them live. A
 * point is never sent before it is durable, so whatever the relay or a consumer misses, the log
 * can replay. With a link already holding LIVE_BUFFERED_BYTES, or whose send budget (the rates the
 * relay announced, agents/link/send-budget.ts) has no room for them now, points are not queued in
 * memory: the publisher notes where each stream's skipped run starts and, once the link drains and
 * the budget has room, sends the run from the log as live data, a frame per turn, in turns with
 * replay rounds (a stream that goes quiet after a burst would otherwise leave its tail unannounced
 * until its next point). A skipped stream's later points join its run, so under a tight budget the
 * points go in fewer, fuller frames. With no link at all they wait for the consumers' replay:
 * a new link brings the consumers' subscriptions back, and their cursors say what they lack.
 */
import { encodePoint, type PointReading } from '../points/point.ts';
import { DmzError } from '../../relay/protocol/errors.ts';
import { MAX_POINTS_PER_FRAME } from '../../relay/protocol/limits.ts';
import { topicInNamespace, validateTopic } from '../../relay/protocol/topics.ts';
import type { StreamLog } from './log/stream-log.ts';
import { frameBytesOf, frameRuns } from './frame-batches.ts';
import type { PublishingLink } from './publishing-link.ts';
import { MAX_READINGS_PER_WRITE, type SourceOutput } from './sources/source.ts';

/** Queued bytes above which live points are left to replay: a few hundred ms of a slow uplink. */
export const LIVE_BUFFERED_BYTES = 4 * 1024 * 1024;
/**
 * Records one catch-up pass reads at most, over all skipped streams: a few frames' worth, so every
 * skipped stream's run fits one pass at the rates where a send budget holds points back, and what
 * a pass holds while the budget lets it out stays small (its bytes are bounded by the log too).
 */
const SKIPPED_PASS_RECORDS = 4 * MAX_POINTS_PER_FRAME;

export interface PublisherStats {
  readonly pointsLogged: number;
  /** Points sent live: at once, or from the log once the link drained. */
  readonly pointsSent: number;
  /** Durable points not sent at once (no link, the link was full, or its send budget was spent). */
  readonly pointsLeftToReplay: number;
}

/** A stream's run of points skipped live: `next` .. `last` are still to be sent. */
interface SkippedRun {
  next: number;
  last: number;
}

export class PointPublisher implements SourceOutput {
  readonly #log: StreamLog;
  readonly #agentName: string;
  readonly #onError: (error: unknown) => void;
  #link: PublishingLink | undefined;
  /** Per stream, what the current link skipped; sent in this order once it drains. */
  #skipped = new Map<string, SkippedRun>();
  /** The link whose skipped runs are being sent, if any. */
  #catchingUpOn: PublishingLink | undefined;
  #pointsLogged = 0;
  #pointsSent = 0;
  #pointsLeftToReplay = 0;

  /** `onError` hears of a skipped run that could not be read back: its consumers replay it. */
  constructor(log: StreamLog, agentName: string, onError: (error: unknown) => void = () => undefined) {
    this.#log = log;
    this.#agentName = agentName;
    this.#onError = onError;
  }

  /** The link live points go to from now on; undefined while there is none. */
  useLink(link: PublishingLink | undefined): void {
    if (link === this.#link) return;
    this.#link = link;
    // What the old link skipped, consumers on the new one resume from their cursors anyway.
    this.#skipped = new Map();
  }

  async write(topic: string, readings: readonly PointReading[]): Promise<void> {
    validateTopic(topic);
    if (!topicInNamespace(this.#agentName, topic)) {
      throw new DmzError('RELAY_ERR_FORBIDDEN', `topics of this agent start with "${this.#agentName}/"`);
    }
    if (readings.length > MAX_READINGS_PER_WRITE) {
      // One write is one append, so it is durable all or nothing and a retry never duplicates.
      throw new DmzError('AGENT_ERR_LOG_APPEND', `a write holds at most ${MAX_READINGS_PER_WRITE} readings`);
    }
    const records = readings.map((reading) => encodePoint(reading));
    const { firstSeq } = await this.#log.append(topic, records);
    this.#pointsLogged += records.length;
    this.#sendLive(topic, firstSeq, records);
  }

  stats(): PublisherStats {
    return {
      pointsLogged: this.#pointsLogged,
      pointsSent: this.#pointsSent,
      pointsLeftToReplay: this.#pointsLeftToReplay,
    };
  }

  #sendLive(topic: string, firstSeq: number, records: readonly Uint8Array[]): void {
    const link = this.#link;
    if (link === undefined || link.closed) {
      this.#pointsLeftToReplay += records.length;
      return;
    }
    const lastSeq = firstSeq + records.length - 1;
    const skipped = this.#skipped.get(topic);
    const runs =
      skipped === undefined && link.bufferedBytes <= LIVE_BUFFERED_BYTES
        ? [...frameRuns(records, link.budget.frameBytes)]
        : undefined;
    if (runs === undefined || !link.budget.allows(runs.length, sumFrameBytes(runs))) {
      // Behind a skipped run, later points wait their turn too: a stream goes out in order.
      if (skipped === undefined) this.#skipped.set(topic, { next: firstSeq, last: lastSeq });
      else skipped.last = Math.max(skipped.last, lastSeq);
      this.#pointsLeftToReplay += records.length;
      this.#catchUp(link);
      return;
    }
    let seq = firstSeq;
    for (const run of runs) {
      link.publish(topic, seq, run);
      seq += run.length;
    }
    this.#pointsSent += records.length;
  }

  #catchUp(link: PublishingLink): void {
    if (this.#catchingUpOn === link) return;
    this.#catchingUpOn = link;
    void this.#sendSkipped(link);
  }

  /**
   * Sends the skipped runs from the log as live data, paced like a replay round: one frame each
   * time the link is writable again (by the bound live points go by, and with room in the send
   * budget). Every skipped run is read in one pass over the log, which costs the log range the
   * runs span rather than streams times that range (one stream's read walks every stream's frames).
   * Its end, error or not, is noted in the same step that saw it, so a point skipped just after
   * starts the next catch-up instead of finding this one still marked as running.
   */
  async #sendSkipped(link: PublishingLink): Promise<void> {
    try {
      const current = () => this.#link === link && !link.closed;
      for (;;) {
        await link.whenWritable(LIVE_BUFFERED_BYTES);
        if (!current() || this.#skipped.size === 0) return;
        const from = new Map([...this.#skipped].map(([topic, run]) => [topic, run.next]));
        const pass = await this.#log.readStreams(from, SKIPPED_PASS_RECORDS);
        if (!current()) return;
        let moved = false;
        let turnTaken = true;
        for (const [topic, result] of pass.streams) {
          const run = this.#skipped.get(topic);
          if (run === undefined) continue;
          // Points retention took meanwhile are passed over: the consumer sees a hole, and its
          // replay round brings the gap record (a consumer believes a gap only from a round).
          const records = result.records.filter((record) => record.seq >= run.next && record.seq <= run.last);
          let seq = records[0]?.seq ?? 0;
          for (const points of frameRuns(
            records.map((record) => record.bytes),
            link.budget.frameBytes,
          )) {
            if (!turnTaken) await link.whenWritable(LIVE_BUFFERED_BYTES);
            if (!current()) return;
            turnTaken = false;
            link.publish(topic, seq, points);
            seq += points.length;
            this.#pointsSent += points.length;
          }
          const next = Math.min(result.nextSeq, run.last + 1);
          moved ||= next > run.next;
          if (next > run.last) this.#skipped.delete(topic);
          else run.next = Math.max(run.next, next);
        }
        // A pass that moved no run (it cannot, for points the log numbered) would loop for ever:
        // what is left goes to the consumers' replay.
        if (!moved) this.#skipped.clear();
      }
    } catch (error) {
      if (this.#link === link) {
        // Later points of these streams go live again; their consumers see the hole and replay.
        this.#skipped.clear();
        if (!link.closed) this.#onError(error);
      }
    } finally {
      if (this.#catchingUpOn === link) this.#catchingUpOn = undefined;
    }
  }
}

function sumFrameBytes(runs: readonly (readonly Uint8Array[])[]): number {
  let bytes = 0;
  for (const run of runs) bytes += frameBytesOf(run);
  return bytes;
}

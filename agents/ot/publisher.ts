/**
 * The OT agent's one way in for points: a source hands over readings of a topic, the publisher
 * encodes them, appends them to the durable log and, once they are durable, sends them live. A
 * point is never sent before it is durable, so whatever the relay or a consumer misses, the log
 * can replay. With a link already holding LIVE_BUFFERED_BYTES, points are not queued in memory:
 * the publisher notes where each stream's skipped run starts and, once the link drains, sends the
 * run from the log as live data (a stream that goes quiet after a burst would otherwise leave its
 * tail unannounced until its next point). With no link at all they wait for the consumers' replay:
 * a new link brings the consumers' subscriptions back, and their cursors say what they lack.
 */
import { encodePoint, type PointReading } from '../points/point.ts';
import { DmzError } from '../../relay/protocol/errors.ts';
import { MAX_POINTS_PER_FRAME } from '../../relay/protocol/limits.ts';
import { topicInNamespace, validateTopic } from '../../relay/protocol/topics.ts';
import type { StreamLog } from './log/stream-log.ts';
import { frameRuns } from './frame-batches.ts';
import type { PublishingLink } from './publishing-link.ts';
import { MAX_READINGS_PER_WRITE, type SourceOutput } from './sources/source.ts';

/** Queued bytes above which live points are left to replay: a few hundred ms of a slow uplink. */
export const LIVE_BUFFERED_BYTES = 4 * 1024 * 1024;

export interface PublisherStats {
  readonly pointsLogged: number;
  /** Points sent live: at once, or from the log once the link drained. */
  readonly pointsSent: number;
  /** Durable points not sent at once (no link, or the link was full). */
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
    if (skipped !== undefined || link.bufferedBytes > LIVE_BUFFERED_BYTES) {
      // Behind a skipped run, later points wait their turn too: a stream goes out in order.
      if (skipped === undefined) this.#skipped.set(topic, { next: firstSeq, last: lastSeq });
      else skipped.last = Math.max(skipped.last, lastSeq);
      this.#pointsLeftToReplay += records.length;
      this.#catchUp(link);
      return;
    }
    this.#publish(link, topic, firstSeq, records);
  }

  #publish(link: PublishingLink, topic: string, firstSeq: number, records: readonly Uint8Array[]): void {
    let seq = firstSeq;
    for (const run of frameRuns(records, link.welcome.maxFrameBytes)) {
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
   * Sends the skipped runs from the log as live data, paced like a replay round: one read's worth
   * each time the link is writable again (by the bound live points go by), the streams in turn.
   * Its end, error or not, is noted in the same step that saw it, so a point skipped just after
   * starts the next catch-up instead of finding this one still marked as running.
   */
  async #sendSkipped(link: PublishingLink): Promise<void> {
    try {
      const current = () => this.#link === link && !link.closed;
      for (;;) {
        await link.whenWritable(LIVE_BUFFERED_BYTES);
        const first = this.#skipped.entries().next();
        if (!current() || first.done === true) return;
        const [topic, run] = first.value;
        const count = Math.min(MAX_POINTS_PER_FRAME, run.last - run.next + 1);
        const result = await this.#log.read(topic, run.next, count);
        if (!current() || this.#skipped.get(topic) !== run) return;
        // Points retention took meanwhile are passed over: the consumer sees a hole, and its replay
        // round brings the gap record (a consumer believes a gap only from a round).
        const records = result.records.filter((record) => record.seq <= run.last);
        const firstRecord = records[0];
        if (firstRecord !== undefined) {
          this.#publish(
            link,
            topic,
            firstRecord.seq,
            records.map((record) => record.bytes),
          );
        }
        const next = Math.min(result.nextSeq, run.last + 1);
        this.#skipped.delete(topic);
        // The stream goes to the back, so one that keeps skipping holds up no other; a read that
        // made no progress (it cannot, for points the log numbered) would otherwise loop.
        if (next > run.next && next <= run.last) this.#skipped.set(topic, { next, last: run.last });
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

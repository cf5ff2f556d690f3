/**
 * The OT agent's one way in for points: a source hands over readings of a topic, the publisher
 * encodes them, appends them to the durable log and, once they are durable, sends them live. A
 * point is never sent before it is durable, so whatever the relay or a consumer misses, the log
 * can replay. Live sending is best effort by design: with no link, or a link already holding
 * LIVE_BUFFERED_BYTES, the points wait in the log for the consumers' replay instead of in memory.
 */
import { encodePoint, type PointReading } from '../points/point.ts';
import { DmzError } from '../../relay/protocol/errors.ts';
import { topicInNamespace, validateTopic } from '../../relay/protocol/topics.ts';
import type { StreamLog } from './log/stream-log.ts';
import { frameRuns } from './frame-batches.ts';
import type { PublishingLink } from './publishing-link.ts';
import { MAX_READINGS_PER_WRITE, type SourceOutput } from './sources/source.ts';

/** Queued bytes above which live points are left to replay: a few hundred ms of a slow uplink. */
export const LIVE_BUFFERED_BYTES = 4 * 1024 * 1024;

export interface PublisherStats {
  readonly pointsLogged: number;
  readonly pointsSent: number;
  /** Durable points not sent live (no link, or the link was full): consumers replay them. */
  readonly pointsLeftToReplay: number;
}

export class PointPublisher implements SourceOutput {
  readonly #log: StreamLog;
  readonly #agentName: string;
  #link: PublishingLink | undefined;
  #pointsLogged = 0;
  #pointsSent = 0;
  #pointsLeftToReplay = 0;

  constructor(log: StreamLog, agentName: string) {
    this.#log = log;
    this.#agentName = agentName;
  }

  /** The link live points go to from now on; undefined while there is none. */
  useLink(link: PublishingLink | undefined): void {
    this.#link = link;
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
    if (link === undefined || link.closed || link.bufferedBytes > LIVE_BUFFERED_BYTES) {
      this.#pointsLeftToReplay += records.length;
      return;
    }
    let seq = firstSeq;
    for (const run of frameRuns(records, link.welcome.maxFrameBytes)) {
      link.publish(topic, seq, run);
      seq += run.length;
    }
    this.#pointsSent += records.length;
  }
}

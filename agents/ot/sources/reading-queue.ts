/**
 * Readings that arrive when a device says so (OPC UA data changes, MQTT messages), on their way to
 * the log: per topic, in order, one write in flight at a time (each waits for the one before to be
 * durable), a refused write kept and tried again. A device cannot be told to wait, so what waits
 * here is bounded: past the bound the oldest readings of the topic that overflows are dropped, and
 * the source's last error says how many.
 */
import type { ErrorCode } from '../../../relay/protocol/errors.ts';
import { encodePoint, MAX_REASON_BYTES, type PointReading } from '../../points/point.ts';
import {
  describeSourceError,
  MAX_READINGS_PER_WRITE,
  MIN_RETRY_DELAY_MS,
  type SourceError,
  type SourceOutput,
  type SourceStats,
  type SourceTimers,
} from './source.ts';

/**
 * Readings waiting across all topics of one source (~100 bytes each in memory): ten seconds of
 * 10,000 items changing every second, about 10 MB, before the log's backlog costs readings.
 */
export const MAX_PENDING_READINGS = 100_000;

interface TopicQueue {
  /** Waiting, oldest first; the batch in flight is not here. */
  pending: PointReading[];
  /** When each pending reading arrived, by the source's clock (for lagMs). */
  arrivedAt: number[];
  writing: boolean;
  retry: unknown;
}

export type QueueStats = Omit<SourceStats, 'finished'>;

export class ReadingQueue {
  readonly #output: SourceOutput;
  readonly #now: () => number;
  readonly #timers: SourceTimers;
  readonly #maxPending: number;
  readonly #topics = new Map<string, TopicQueue>();
  readonly #inFlight = new Set<Promise<void>>();
  #pendingTotal = 0;
  #closed = false;
  #readings = 0;
  #batches = 0;
  #failedWrites = 0;
  #behind = 0;
  #lagMs = 0;
  #dropped = 0;
  #lastError: SourceError | undefined;

  constructor(
    output: SourceOutput,
    now: () => number,
    timers: SourceTimers,
    maxPending = MAX_PENDING_READINGS,
  ) {
    this.#output = output;
    this.#now = now;
    this.#timers = timers;
    this.#maxPending = maxPending;
  }

  /**
   * Queues one reading of `topic` and starts its write if none is in flight. A reading the point
   * model refuses (text that is not well-formed Unicode) is queued as a bad reading saying so: one
   * bad value must not make every write of its topic fail.
   */
  push(topic: string, reading: PointReading): void {
    if (this.#closed) return;
    let queue = this.#topics.get(topic);
    if (queue === undefined) {
      queue = { pending: [], arrivedAt: [], writing: false, retry: undefined };
      this.#topics.set(topic, queue);
    }
    if (this.#pendingTotal >= this.#maxPending && queue.pending.length > 0) {
      queue.pending.shift();
      queue.arrivedAt.shift();
      this.#pendingTotal--;
      this.#dropped++;
      this.noteError(undefined, `dropped ${this.#dropped} readings so far: the log is behind`);
    }
    queue.pending.push(checked(reading, this.#now()));
    queue.arrivedAt.push(this.#now());
    this.#pendingTotal++;
    this.#drain(topic, queue);
  }

  /** Records a problem of the source (a lost connection, a refused certificate) for status. */
  noteError(code: ErrorCode | undefined, message: string): void {
    this.#lastError = { code, message, time: this.#now() };
  }

  stats(): QueueStats {
    return {
      readings: this.#readings,
      batches: this.#batches,
      failedWrites: this.#failedWrites,
      behind: this.#behind,
      lagMs: this.#lagMs,
      lastError: this.#lastError,
    };
  }

  /** Writes no more; resolves once no write is in flight. Readings still waiting are dropped. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const queue of this.#topics.values()) {
      if (queue.retry !== undefined) this.#timers.clearTimeout(queue.retry);
      queue.retry = undefined;
    }
    await Promise.all(this.#inFlight);
  }

  #drain(topic: string, queue: TopicQueue): void {
    if (this.#closed || queue.writing || queue.retry !== undefined || queue.pending.length === 0) return;
    const readings = queue.pending.splice(0, MAX_READINGS_PER_WRITE);
    const arrivedAt = queue.arrivedAt.splice(0, readings.length);
    this.#pendingTotal -= readings.length;
    if (queue.pending.length >= MAX_READINGS_PER_WRITE) this.#behind++;
    this.#lagMs = Math.max(0, this.#now() - (arrivedAt[0] ?? this.#now()));
    queue.writing = true;
    const write = this.#write(topic, queue, readings, arrivedAt).finally(() => this.#inFlight.delete(write));
    this.#inFlight.add(write);
  }

  async #write(
    topic: string,
    queue: TopicQueue,
    readings: PointReading[],
    arrivedAt: number[],
  ): Promise<void> {
    try {
      await this.#output.write(topic, readings);
      this.#readings += readings.length;
      this.#batches++;
      queue.writing = false;
      this.#drain(topic, queue);
    } catch (error) {
      // A refused write stored none of its readings: they go back first, to be written again.
      this.#failedWrites++;
      this.#lastError = describeSourceError(error, this.#now());
      queue.pending.unshift(...readings);
      queue.arrivedAt.unshift(...arrivedAt);
      this.#pendingTotal += readings.length;
      queue.writing = false;
      if (this.#closed) return;
      queue.retry = this.#timers.setTimeout(() => {
        queue.retry = undefined;
        this.#drain(topic, queue);
      }, MIN_RETRY_DELAY_MS);
    }
  }
}

function checked(reading: PointReading, now: number): PointReading {
  try {
    encodePoint(reading);
    return reading;
  } catch (error) {
    const { sourceTime } = reading;
    return {
      value: 0,
      quality: 'bad',
      reason: (error as Error).message.slice(0, MAX_REASON_BYTES),
      sourceTime: Number.isSafeInteger(sourceTime) && sourceTime >= 0 ? sourceTime : now,
    };
  }
}

/**
 * The end of a poll cycle: the readings it keeps, one topic each, written all at once (the log
 * commits them together) and waited for until every one is durable. A write the runtime refuses
 * (AGENT_ERR_LOG_BUSY) is written again after MIN_RETRY_DELAY_MS, and the device is not polled
 * meanwhile: a log that falls behind slows the poller down, it never loses a reading.
 */
import type { PointReading } from '../../../points/point.ts';
import {
  describeSourceError,
  MIN_RETRY_DELAY_MS,
  type SourceError,
  type SourceOutput,
  type SourceTimers,
} from '../source.ts';

export interface TopicReading {
  readonly topic: string;
  readonly reading: PointReading;
}

export class CycleWriter {
  readonly #output: SourceOutput;
  readonly #timers: SourceTimers;
  readonly #now: () => number;
  #stopped = false;
  #sleeper: (() => void) | undefined;
  /** Readings durable (one per write). */
  written = 0;
  /** Writes refused and made again. */
  refused = 0;
  lastError: SourceError | undefined;

  constructor(output: SourceOutput, timers: SourceTimers, now: () => number) {
    this.#output = output;
    this.#timers = timers;
    this.#now = now;
  }

  /** Resolves once every reading is durable, or once the writer is stopped. */
  async writeAll(readings: readonly TopicReading[]): Promise<void> {
    let pending = readings;
    while (pending.length > 0 && !this.#stopped) {
      const refused = await Promise.all(pending.map((entry) => this.#write(entry)));
      pending = refused.filter((entry) => entry !== undefined);
      if (pending.length > 0) await this.#sleep(MIN_RETRY_DELAY_MS);
    }
  }

  /** Writes no more: a pause before a retry ends at once. */
  stop(): void {
    this.#stopped = true;
    this.#sleeper?.();
  }

  /** Undefined once durable; the entry itself when refused. */
  async #write(entry: TopicReading): Promise<TopicReading | undefined> {
    try {
      await this.#output.write(entry.topic, [entry.reading]);
    } catch (error) {
      this.refused++;
      this.lastError = describeSourceError(error, this.#now());
      return entry;
    }
    this.written++;
    return undefined;
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        this.#timers.clearTimeout(timer);
        this.#sleeper = undefined;
        resolve();
      };
      const timer = this.#timers.setTimeout(wake, ms);
      this.#sleeper = wake;
    });
  }
}

/**
 * Drains an MQTT source's reading buffer into the runtime's output: one round of writes at a time
 * (one write per topic, the log commits them together), each awaited until durable before the next
 * round. A refused write's readings go back in front of the buffer and are written again after
 * MIN_RETRY_DELAY_MS; nothing is dropped here but what the buffer itself drops when full.
 */
import type { PointReading } from '../../../points/point.ts';
import { MIN_RETRY_DELAY_MS, type SourceOutput, type SourceTimers } from '../source.ts';
import { ReadingBuffer, type ReadingRound } from './reading-buffer.ts';

export interface WriterEvents {
  /** A round settled and the buffer has room: a paused client may read on. */
  room(): void;
  refused(error: unknown): void;
}

export interface WriterStats {
  readonly readings: number;
  readonly batches: number;
  readonly failedWrites: number;
  /** Rounds that left readings waiting: the log took less than the broker gave. */
  readonly behind: number;
  /** How long the oldest reading of the latest round had waited when the round started. */
  readonly lagMs: number;
}

export class BufferedWriter {
  readonly #buffer: ReadingBuffer;
  readonly #timers: SourceTimers;
  readonly #now: () => number;
  readonly #events: WriterEvents;
  #output: SourceOutput | undefined;
  #running = false;
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #readings = 0;
  #batches = 0;
  #failedWrites = 0;
  #behind = 0;
  #lagMs = 0;

  constructor(capacity: number, timers: SourceTimers, now: () => number, events: WriterEvents) {
    this.#buffer = new ReadingBuffer(capacity);
    this.#timers = timers;
    this.#now = now;
    this.#events = events;
  }

  get full(): boolean {
    return this.#buffer.full;
  }

  /** Readings held: waiting, or in a write that has not settled. */
  get size(): number {
    return this.#buffer.size;
  }

  /** Adds a reading to write; true if the buffer was full and its oldest waiting one was dropped. */
  push(topic: string, reading: PointReading): boolean {
    const dropped = this.#buffer.push(topic, reading, this.#now()) !== undefined;
    this.#wake?.();
    return dropped;
  }

  start(output: SourceOutput): void {
    this.#output = output;
    this.#running = true;
    this.#loop = this.#run();
  }

  /**
   * Ends the rounds, then writes one more round of what waits; resolves with the readings that
   * were not written (refused in that round, or beyond it).
   */
  async stop(): Promise<number> {
    if (!this.#running) return 0;
    this.#running = false;
    this.#wake?.();
    await this.#loop;
    const refused = await this.#writeRound(this.#buffer.take(), false);
    return refused + this.#buffer.clear();
  }

  stats(): WriterStats {
    return {
      readings: this.#readings,
      batches: this.#batches,
      failedWrites: this.#failedWrites,
      behind: this.#behind,
      lagMs: this.#lagMs,
    };
  }

  async #run(): Promise<void> {
    while (this.#running) {
      const round = this.#buffer.take();
      if (round.groups.size === 0) {
        await this.#idle();
        continue;
      }
      if (this.#buffer.waiting > 0) this.#behind++;
      const refused = await this.#writeRound(round, true);
      if (!this.#buffer.full) this.#events.room();
      if (refused > 0) await this.#idle(MIN_RETRY_DELAY_MS);
    }
  }

  /** Writes a round; refused readings go back to the buffer, or are let go when `keep` is false. */
  async #writeRound(round: ReadingRound, keep: boolean): Promise<number> {
    const output = this.#output;
    if (output === undefined || round.groups.size === 0) return 0;
    const takenAt = round.oldestTakenAt ?? this.#now();
    this.#lagMs = Math.max(0, this.#now() - takenAt);
    let refused = 0;
    await Promise.all(
      [...round.groups].map(async ([topic, readings]) => {
        try {
          await output.write(topic, readings);
          this.#buffer.settle(readings.length);
          this.#readings += readings.length;
          this.#batches++;
        } catch (error) {
          this.#failedWrites++;
          this.#events.refused(error);
          refused += readings.length;
          if (keep) this.#buffer.restore(topic, readings, takenAt);
          else this.#buffer.settle(readings.length);
        }
      }),
    );
    return refused;
  }

  /** Until a reading is pushed, the writer stops, or `delayMs` passes. */
  async #idle(delayMs?: number): Promise<void> {
    if (!this.#running) return;
    await new Promise<void>((resolve) => {
      const timer = delayMs === undefined ? undefined : this.#timers.setTimeout(resolve, delayMs);
      this.#wake = () => {
        if (timer !== undefined) this.#timers.clearTimeout(timer);
        resolve();
      };
    });
    this.#wake = undefined;
  }
}

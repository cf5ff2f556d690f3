/**
 * The readings an MQTT source took and has not written yet, in arrival order, bounded. A broker
 * pushes: it does not wait for the log. The source first pauses the client when the buffer is full
 * (source.ts); if the log stays behind, the oldest waiting reading is dropped for each new one, and
 * counted, so memory is bounded by the configured capacity whatever the broker sends.
 *
 * Readings handed out for writing stay counted until their write settles: a refused write puts
 * them back in front, in order, and the source writes them again (a write is all or nothing, so
 * that duplicates none).
 */
import type { PointReading } from '../../../points/point.ts';
import { MAX_READINGS_PER_WRITE } from '../source.ts';

interface BufferedReading {
  readonly topic: string;
  readonly reading: PointReading;
  /** When the source took it, by its clock: how long the oldest one waited is the source's lag. */
  readonly takenAt: number;
}

/** One round of writes: each topic's readings, and when the oldest of them was taken. */
export interface ReadingRound {
  readonly groups: Map<string, PointReading[]>;
  readonly oldestTakenAt: number | undefined;
}

/** Taken readings are spliced out of the array once this many wait at its head. */
const COMPACT_AFTER = 1024;

export class ReadingBuffer {
  readonly capacity: number;
  #entries: BufferedReading[] = [];
  #head = 0;
  #inFlight = 0;

  constructor(capacity: number) {
    if (!(Number.isSafeInteger(capacity) && capacity >= 2)) {
      throw new RangeError(`a reading buffer holds at least 2 readings, not ${capacity}`);
    }
    this.capacity = capacity;
  }

  /** Readings held: waiting, and handed out to a write that has not settled. */
  get size(): number {
    return this.#entries.length - this.#head + this.#inFlight;
  }

  get full(): boolean {
    return this.size >= this.capacity;
  }

  get waiting(): number {
    return this.#entries.length - this.#head;
  }

  /**
   * Adds a reading; when the buffer is full, drops the oldest waiting one first and returns it.
   * There always is one: a round takes at most half the capacity (take).
   */
  push(topic: string, reading: PointReading, takenAt: number): PointReading | undefined {
    let dropped: PointReading | undefined;
    if (this.full) {
      dropped = this.#entries[this.#head]?.reading;
      this.#head++;
      this.#compact();
    }
    this.#entries.push({ topic, reading, takenAt });
    return dropped;
  }

  /**
   * The next round of writes: waiting readings grouped by topic, each topic's in arrival order and
   * at most MAX_READINGS_PER_WRITE, half the capacity at most in all, so that a full buffer always
   * has a waiting reading to drop. They count as held until settle() or restore().
   */
  take(): ReadingRound {
    const groups = new Map<string, PointReading[]>();
    const oldestTakenAt = this.#entries[this.#head]?.takenAt;
    const limit = Math.floor(this.capacity / 2) - this.#inFlight;
    let taken = 0;
    while (this.#head < this.#entries.length && taken < limit) {
      const entry = this.#entries[this.#head];
      if (entry === undefined) break;
      let group = groups.get(entry.topic);
      if (group === undefined) {
        group = [];
        groups.set(entry.topic, group);
      }
      // The next write of this topic must wait: readings after it must not overtake it.
      if (group.length >= MAX_READINGS_PER_WRITE) break;
      group.push(entry.reading);
      this.#head++;
      taken++;
    }
    this.#inFlight += taken;
    this.#compact();
    return { groups, oldestTakenAt: taken === 0 ? undefined : oldestTakenAt };
  }

  /** A taken group was written. */
  settle(count: number): void {
    this.#inFlight -= count;
  }

  /** A taken group was refused: its readings go back in front of everything waiting, in order. */
  restore(topic: string, readings: readonly PointReading[], takenAt: number): void {
    this.#inFlight -= readings.length;
    const restored = readings.map((reading) => ({ topic, reading, takenAt }));
    this.#entries = [...restored, ...this.#entries.slice(this.#head)];
    this.#head = 0;
  }

  /** Everything waiting, removed: what a stopped source could not write. */
  clear(): number {
    const count = this.waiting;
    this.#entries = [];
    this.#head = 0;
    return count;
  }

  #compact(): void {
    if (this.#head >= COMPACT_AFTER && this.#head * 2 >= this.#entries.length) {
      this.#entries = this.#entries.slice(this.#head);
      this.#head = 0;
    }
  }
}

/**
 * One topic of the recent-values store: its current value, a bounded history of its entries in
 * store order, and what it lost to the bounds. Entries carry the store-wide id that cursors name,
 * so a topic's history is sorted by id and searched by it.
 */
import type { Point } from '../../points/point.ts';
import { cursorAfter } from './entry-checks.ts';
import type { SinkEntry } from './sink.ts';

/** An entry as the store holds it: its place in the store's order, and the entry. */
export interface RecentEntry {
  readonly id: number;
  readonly entry: SinkEntry;
}

export interface TopicLimits {
  readonly maxEntries: number;
  readonly maxAgeMs: number;
}

export class RecentTopic {
  readonly topic: string;
  lastSeq: number;
  /** The newest point, kept whatever the bounds evict (a slow point still shows its value). */
  current: RecentEntry | undefined;
  /** Gap records held or evicted: what the OT log no longer had, as the dashboard counts it. */
  gaps: number;
  /** The highest id this topic evicted: a cursor below it has missed entries of this topic. */
  evictedThrough: number;
  readonly #entries: RecentEntry[] = [];
  #head = 0;

  constructor(topic: string, lastSeq = 0, gaps = 0, evictedThrough = 0) {
    this.topic = topic;
    this.lastSeq = lastSeq;
    this.gaps = gaps;
    this.evictedThrough = evictedThrough;
  }

  get size(): number {
    return this.#entries.length - this.#head;
  }

  add(held: RecentEntry, limits: TopicLimits, nowMs: number): void {
    const { entry } = held;
    if (entry.kind === 'reset') this.#forgetFrom(entry.from);
    this.#entries.push(held);
    this.lastSeq = cursorAfter(entry);
    if (entry.kind === 'point') this.current = held;
    else if (entry.kind === 'gap') this.gaps++;
    this.trim(limits, nowMs);
  }

  /**
   * A reset: the OT log that numbered this topic's points from `from` on is gone, and those
   * numbers will name other points. The entries so numbered leave the history (the reset entry
   * stays, saying why); the current value stays on screen until the next point replaces it.
   */
  #forgetFrom(from: number): void {
    const kept = this.#entries
      .slice(this.#head)
      .filter(({ entry }) => entry.kind !== 'point' || entry.point.seq < from);
    this.#entries.splice(0, this.#entries.length, ...kept);
    this.#head = 0;
  }

  /** Puts back an entry read from a snapshot, without counting it again. */
  restore(held: RecentEntry): void {
    this.#entries.push(held);
  }

  /** Evicts from the oldest end: beyond the count, or points older than the age (by source time). */
  trim(limits: TopicLimits, nowMs: number): void {
    const oldest = nowMs - limits.maxAgeMs;
    while (this.size > 0) {
      const head = this.#entries[this.#head] as RecentEntry;
      const tooOld = head.entry.kind === 'point' && head.entry.point.sourceTime < oldest;
      if (this.size <= limits.maxEntries && !tooOld) break;
      this.evictOldest();
    }
  }

  /** The id of the oldest entry held; undefined when the history is empty. */
  get oldestId(): number | undefined {
    return this.#entries[this.#head]?.id;
  }

  /** Evicts the oldest entry (the store-wide budget's step); the current value stays apart. */
  evictOldest(): void {
    const head = this.#entries[this.#head];
    if (head === undefined) return;
    this.evictedThrough = head.id;
    this.#head++;
    // Compacted once half the array is evicted: amortised O(1) per entry, no shift() per eviction.
    if (this.#head > 64 && this.#head * 2 > this.#entries.length) {
      this.#entries.splice(0, this.#head);
      this.#head = 0;
    }
  }

  /**
   * The index (for entryAt, below `end`) of the first entry with an id above `afterId` (all: 0);
   * `end` when there is none.
   */
  indexAfter(afterId: number): number {
    let low = this.#head;
    let high = this.#entries.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((this.#entries[middle] as RecentEntry).id <= afterId) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  /** The index of the first point with a source time at or after `fromMs`; `end` when none. */
  indexFrom(fromMs: number): number {
    for (let index = this.#head; index < this.#entries.length; index++) {
      const { entry } = this.#entries[index] as RecentEntry;
      if (entry.kind === 'point' && entry.point.sourceTime >= fromMs) return index;
    }
    return this.#entries.length;
  }

  /** One past the last index held. */
  get end(): number {
    return this.#entries.length;
  }

  entryAt(index: number): RecentEntry {
    const held = this.#entries[index];
    if (held === undefined || index < this.#head) throw new RangeError(`no entry ${index} is held`);
    return held;
  }

  entries(): readonly RecentEntry[] {
    return this.#entries.slice(this.#head);
  }

  currentPoint(): Point | undefined {
    const entry = this.current?.entry;
    return entry?.kind === 'point' ? entry.point : undefined;
  }
}

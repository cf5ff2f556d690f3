/**
 * The recent-values store's store-wide bound on history entries (`historyEntries`). Per-topic
 * bounds alone let memory and the snapshot grow with the topic count, which the OT side chooses
 * (10,000 topics of 600 entries would be 6 million entries); this caps the sum whatever the count.
 *
 * Over the budget, the oldest entry of the whole store (lowest id) leaves first, from its topic's
 * oldest end, so a busy topic cannot keep a quiet one's recent entries out. A topic's current
 * value is never evicted: RecentTopic keeps it apart from the history, so every topic still shows
 * its value (at most one per topic beyond the budget).
 *
 * Topics wait in a min-heap by the id of their oldest entry when queued. That id only grows (a
 * topic loses entries from its oldest end, or by a reset, and gains newer ones), so a queued key is
 * never above the topic's true oldest id: a stale key is corrected when it reaches the top.
 */
import { popHeap, pushHeap, siftDown } from './recent-heap.ts';
import type { RecentTopic } from './recent-topic.ts';

interface Queued {
  readonly topic: RecentTopic;
  key: number;
}

const keyOf = (queued: Queued): number => queued.key;

export class HistoryBudget {
  readonly #max: number;
  #held = 0;
  readonly #heap: Queued[] = [];
  /** The topics in the heap: every topic that holds an entry is (and some that no longer do). */
  readonly #queued = new Set<RecentTopic>();

  constructor(max: number, topics: Iterable<RecentTopic>) {
    this.#max = max;
    for (const topic of topics) this.noteChange(topic, 0);
  }

  /** Entries held across the store. */
  get held(): number {
    return this.#held;
  }

  /** Tells the budget that `topic` held `sizeBefore` entries before a change it just made. */
  noteChange(topic: RecentTopic, sizeBefore: number): void {
    this.#held += topic.size - sizeBefore;
    const oldest = topic.oldestId;
    if (oldest === undefined || this.#queued.has(topic)) return;
    this.#queued.add(topic);
    pushHeap(this.#heap, { topic, key: oldest }, keyOf);
  }

  /** Evicts the store's oldest entries until it holds at most the budget. */
  enforce(): void {
    while (this.#held > this.#max) {
      const top = this.#heap[0] as Queued;
      const oldest = top.topic.oldestId;
      if (oldest === undefined) {
        this.#queued.delete(top.topic);
        popHeap(this.#heap, keyOf);
      } else if (oldest !== top.key) {
        top.key = oldest;
        siftDown(this.#heap, 0, keyOf);
      } else {
        top.topic.evictOldest();
        this.#held--;
        top.key = top.topic.oldestId ?? top.key;
        siftDown(this.#heap, 0, keyOf);
      }
    }
  }
}

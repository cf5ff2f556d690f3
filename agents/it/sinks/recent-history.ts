/**
 * One page of the recent-values store's history: the entries of many topics after a cursor, in
 * id order. Each topic's entries are already in id order, so the page is a k-way merge that stops
 * at the page's size: its cost is the topics' starting points plus the page, never every entry
 * held (10,000 topics of 600 entries would be 6 million entries to collect and sort per page).
 */
import { popHeap, siftDown } from './recent-heap.ts';
import type { RecentEntry, RecentTopic } from './recent-topic.ts';

/** Where one topic's part of the merge stands: its next entry's index. */
interface Run {
  readonly topic: RecentTopic;
  index: number;
}

/**
 * Up to `limit` entries of `topics`, each topic's starting at the index `start` gives it, in id
 * order; `more` when entries are left after them.
 */
export function mergeHistory(
  topics: Iterable<RecentTopic>,
  start: (topic: RecentTopic) => number,
  limit: number,
): { entries: RecentEntry[]; more: boolean } {
  const heap: Run[] = [];
  for (const topic of topics) {
    const index = start(topic);
    if (index < topic.end) heap.push({ topic, index });
  }
  for (let node = (heap.length >> 1) - 1; node >= 0; node--) siftDown(heap, node, idOf);
  const entries: RecentEntry[] = [];
  while (heap.length > 0 && entries.length < limit) {
    const run = heap[0] as Run;
    entries.push(run.topic.entryAt(run.index));
    run.index++;
    if (run.index >= run.topic.end) popHeap(heap, idOf);
    else siftDown(heap, 0, idOf);
  }
  return { entries, more: heap.length > 0 };
}

const idOf = (run: Run): number => run.topic.entryAt(run.index).id;

/**
 * The binary min-heap both of the store's "oldest first" walks use: the history merge
 * (recent-history.ts) and the store-wide budget (recent-budget.ts). Each orders topics by the id
 * of an entry, so the heap holds at most one item per topic (10,000), whatever the entries held.
 */

/** Moves the item at `from` down until no child is smaller by `key`. */
export function siftDown<T>(heap: T[], from: number, key: (item: T) => number): void {
  let node = from;
  for (;;) {
    const left = 2 * node + 1;
    const right = left + 1;
    let smallest = node;
    if (left < heap.length && key(heap[left] as T) < key(heap[smallest] as T)) smallest = left;
    if (right < heap.length && key(heap[right] as T) < key(heap[smallest] as T)) smallest = right;
    if (smallest === node) return;
    [heap[node], heap[smallest]] = [heap[smallest] as T, heap[node] as T];
    node = smallest;
  }
}

/** Adds `item` and moves it up until its parent is not larger by `key`. */
export function pushHeap<T>(heap: T[], item: T, key: (item: T) => number): void {
  heap.push(item);
  let node = heap.length - 1;
  while (node > 0) {
    const parent = (node - 1) >> 1;
    if (key(heap[parent] as T) <= key(heap[node] as T)) return;
    [heap[node], heap[parent]] = [heap[parent] as T, heap[node] as T];
    node = parent;
  }
}

/** Removes the smallest item (the caller knows the heap is not empty). */
export function popHeap<T>(heap: T[], key: (item: T) => number): void {
  const last = heap.pop() as T;
  if (heap.length === 0) return;
  heap[0] = last;
  siftDown(heap, 0, key);
}

/**
 * Group commit: appends that arrive while a commit (a write and an fdatasync) is in flight wait
 * and go to disk together in the next one, so one fdatasync serves many appends from many streams.
 * A commit takes at most MAX_COMMIT_BYTES from the front of the queue. An idle queue commits a
 * lone append on the next turn of the event loop (or after `delayMs`, at most MAX_COMMIT_DELAY_MS),
 * so it is never held for company that does not come.
 */
export interface CommitItem {
  readonly bytes: number;
}

interface Waiting<T> {
  readonly item: T;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

export interface CommitQueueOptions<T> {
  /** Writes and syncs the items, in order; resolves once they are durable. */
  readonly commit: (items: readonly T[]) => Promise<void>;
  /** Called once with the error of a commit that failed; the queue itself goes on. */
  readonly onFailure: (error: unknown) => void;
  readonly maxCommitBytes: number;
  readonly delayMs: number;
}

export class CommitQueue<T extends CommitItem> {
  readonly #options: CommitQueueOptions<T>;
  #waiting: Waiting<T>[] = [];
  #waitingBytes = 0;
  #cancelWake: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  #tail: Promise<unknown> = Promise.resolve();

  constructor(options: CommitQueueOptions<T>) {
    this.#options = options;
  }

  /** Bytes waiting for a commit (not counting the one in flight). */
  get waitingBytes(): number {
    return this.#waitingBytes;
  }

  /** Resolves once `item` is durable, rejects with the commit's error if its commit fails. */
  enqueue(item: T): Promise<void> {
    const durable = new Promise<void>((resolve, reject) => this.#waiting.push({ item, resolve, reject }));
    this.#waitingBytes += item.bytes;
    this.#wake();
    return durable;
  }

  /** Runs `task` between two commits, never during one (sealing, retention, closing). */
  exclusive<R>(task: () => Promise<R>): Promise<R> {
    const result = this.#tail.then(task);
    this.#tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  /** Commits everything waiting now, skipping the idle delay; resolves once nothing waits. */
  async flush(): Promise<void> {
    if (this.#cancelWake !== undefined) {
      this.#cancelWake();
      this.#startLoop();
    }
    while (this.#loop !== undefined) await this.#loop;
  }

  /** Rejects everything still waiting, with `error`. */
  rejectAll(error: unknown): void {
    const waiting = this.#waiting;
    this.#waiting = [];
    this.#waitingBytes = 0;
    for (const entry of waiting) entry.reject(error);
  }

  #wake(): void {
    if (this.#loop !== undefined || this.#cancelWake !== undefined) return;
    const start = (): void => this.#startLoop();
    if (this.#options.delayMs > 0) {
      const timer = setTimeout(start, this.#options.delayMs);
      this.#cancelWake = () => clearTimeout(timer);
    } else {
      const immediate = setImmediate(start);
      this.#cancelWake = () => clearImmediate(immediate);
    }
  }

  #startLoop(): void {
    this.#cancelWake = undefined;
    this.#loop = this.#commitWhileWaiting().finally(() => {
      this.#loop = undefined;
      // An append that arrived between the last check and here found the loop still running.
      if (this.#waiting.length > 0) this.#wake();
    });
  }

  async #commitWhileWaiting(): Promise<void> {
    while (this.#waiting.length > 0) {
      const batch = this.#takeBatch();
      await this.exclusive(async () => {
        try {
          await this.#options.commit(batch.map((entry) => entry.item));
        } catch (error) {
          for (const entry of batch) entry.reject(error);
          this.#options.onFailure(error);
          return;
        }
        for (const entry of batch) entry.resolve();
      });
      // Let the appenders just resolved append again before the next commit: they form its group.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  #takeBatch(): Waiting<T>[] {
    let count = 0;
    let bytes = 0;
    for (const entry of this.#waiting) {
      if (count > 0 && bytes + entry.item.bytes > this.#options.maxCommitBytes) break;
      bytes += entry.item.bytes;
      count++;
    }
    this.#waitingBytes -= bytes;
    return this.#waiting.splice(0, count);
  }
}

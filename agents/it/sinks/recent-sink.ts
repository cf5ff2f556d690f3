/**
 * The recent-values sink (`type: recent`): what the IT agent's HTTP API and dashboard read. It keeps
 * every topic's current value and a bounded history (entries per topic, and an age), in memory,
 * behind the same Sink interface as the file sink, so it gets the same exactly-once delivery and
 * resume cursors from the consumer.
 *
 * It persists a snapshot (recent-snapshot.ts) every few seconds and at close, for two reasons: an
 * agent restart must not replay the OT agents' whole retained logs (days of points) into a store
 * that keeps ten minutes, which it would with a cursor of 0; and a dashboard or API client holding
 * a cursor across a clean restart should go on from it. So a write resolves once it is in memory,
 * and lastSeq is what the store holds; after a crash the store reopens at its last snapshot, whose
 * cursors are exactly what it holds, and the consumer replays the rest. Nothing is lost or doubled;
 * only what a crash took is fetched again. The OT agents' log epochs (noteLogEpochs) are taken in
 * memory at the call too, so every snapshot has those of its own instant.
 *
 * Memory and the snapshot are bounded by the store-wide history budget (recent-budget.ts) whatever
 * the topic count; the snapshot is written and read in parts (recent-snapshot.ts).
 *
 * Every accepted entry gets the next store-wide id: cursors are `<epoch>-<id>`, the history is
 * read after an id, and followers (the live stream) get entries in id order.
 */
import { join } from 'node:path';
import type { ProcessLock } from '../../../relay/protocol/process-lock.ts';
import { topicMatches } from '../../../relay/protocol/topics.ts';
import { isNewOrigin, planCursors, topicOf } from './entry-checks.ts';
import { HistoryBudget } from './recent-budget.ts';
import { mergeHistory } from './recent-history.ts';
import { DEFAULT_HISTORY_ENTRIES, MAX_RECENT_TOPICS } from './recent-limits.ts';
import { readSnapshot, SNAPSHOT_FILE, writeSnapshot, type RecentState } from './recent-snapshot.ts';
import { RecentTopic, type RecentEntry, type TopicLimits } from './recent-topic.ts';
import { lockSinkDirectory, prepareSinkDirectory } from './sink-directory.ts';
import { sinkError } from './sink-errors.ts';
import type { Sink, SinkEntry } from './sink.ts';

export type { RecentEntry } from './recent-topic.ts';

export interface RecentSinkOptions {
  readonly name: string;
  /** Where the snapshot lives (created 0700). */
  readonly dir: string;
  readonly maxEntriesPerTopic: number;
  /** History entries across all topics (default DEFAULT_HISTORY_ENTRIES); oldest leave first. */
  readonly maxEntries?: number;
  readonly maxAgeMs: number;
  readonly snapshotIntervalMs: number;
  /** The clock ages are measured by (default Date.now). */
  readonly now?: () => number;
}

export interface HistoryQuery {
  readonly filter: string;
  /** Entries after this id (0: from the oldest held). */
  readonly afterId: number;
  /** Or: entries from the first point whose source time is at or after this. */
  readonly fromMs?: number;
  readonly limit: number;
}

export interface HistoryPage {
  readonly entries: readonly RecentEntry[];
  /** More entries match after the last one returned: ask again from its id. */
  readonly more: boolean;
  /** Entries after the cursor were evicted before they were read: the page starts later. */
  readonly truncated: boolean;
}

export interface TopicSummary {
  readonly topic: string;
  readonly current: RecentEntry | undefined;
  readonly lastSeq: number;
  readonly gaps: number;
  readonly held: number;
}

export type RecentFollower = (entries: readonly RecentEntry[]) => void;

function summarise(held: RecentTopic): TopicSummary {
  return {
    topic: held.topic,
    current: held.current,
    lastSeq: held.lastSeq,
    gaps: held.gaps,
    held: held.size,
  };
}

export async function openRecentSink(options: RecentSinkOptions): Promise<RecentSink> {
  await prepareSinkDirectory(options.dir);
  const lock = lockSinkDirectory(options.dir);
  try {
    const path = join(options.dir, SNAPSHOT_FILE);
    const state = await readSnapshot(path);
    const sink = new RecentSink(options, lock, path, state);
    // Marks the snapshot unclean at once: a crash from here on must move the epoch on.
    await writeSnapshot(path, sink.state(), false);
    return sink;
  } catch (error) {
    lock.release();
    throw error;
  }
}

export class RecentSink implements Sink {
  readonly name: string;
  readonly epoch: number;
  readonly #limits: TopicLimits;
  readonly #now: () => number;
  readonly #lock: ProcessLock;
  readonly #path: string;
  readonly #topics: Map<string, RecentTopic>;
  readonly #budget: HistoryBudget;
  /** OT agent -> its log epochs, newest first (Sink.logEpochs). */
  readonly #origins: Map<string, readonly string[]>;
  readonly #followers = new Set<RecentFollower>();
  readonly #timer: NodeJS.Timeout;
  #nextId: number;
  #dirty = false;
  #snapshotting: Promise<void> = Promise.resolve();
  #failure: Error | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: RecentSinkOptions, lock: ProcessLock, path: string, state: RecentState) {
    this.name = options.name;
    this.#limits = { maxEntries: options.maxEntriesPerTopic, maxAgeMs: options.maxAgeMs };
    this.#now = options.now ?? Date.now;
    this.#lock = lock;
    this.#path = path;
    this.epoch = state.epoch;
    this.#nextId = state.nextId;
    this.#topics = state.topics;
    this.#origins = state.origins;
    this.#budget = new HistoryBudget(options.maxEntries ?? DEFAULT_HISTORY_ENTRIES, this.#topics.values());
    // A snapshot saved under a larger budget (or none) opens within this one.
    this.#budget.enforce();
    this.#timer = setInterval(() => void this.#snapshot(false), options.snapshotIntervalMs);
    this.#timer.unref();
  }

  lastSeq(topic: string): number {
    return this.#topics.get(topic)?.lastSeq ?? 0;
  }

  cursors(): ReadonlyMap<string, number> {
    const cursors = new Map<string, number>();
    // A topic reset to its start holds no position, as one never seen (entry-checks.ts setCursor).
    for (const held of this.#topics.values()) if (held.lastSeq > 0) cursors.set(held.topic, held.lastSeq);
    return cursors;
  }

  logEpochs(agent: string): readonly string[] {
    return this.#origins.get(agent) ?? [];
  }

  /** In memory at once, between the writes called before and after it (the snapshot follows). */
  noteLogEpochs(agent: string, epochs: readonly string[]): Promise<void> {
    try {
      this.#checkOpen();
      if (!isNewOrigin(this.#origins, agent, epochs, MAX_RECENT_TOPICS)) return Promise.resolve();
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    this.#origins.set(agent, [...epochs]);
    this.#dirty = true;
    return Promise.resolve();
  }

  /** In memory at once (the snapshot follows): a refused write changes nothing. */
  write(entries: readonly SinkEntry[]): Promise<void> {
    try {
      this.#checkOpen();
      const advance = planCursors(entries, (topic) => this.lastSeq(topic));
      let newTopics = 0;
      for (const topic of advance.keys()) if (!this.#topics.has(topic)) newTopics++;
      if (this.#topics.size + newTopics > MAX_RECENT_TOPICS) {
        throw sinkError('entry', `the recent-values store keeps at most ${MAX_RECENT_TOPICS} topics`);
      }
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    if (entries.length === 0) return Promise.resolve();
    const nowMs = this.#now();
    const added: RecentEntry[] = [];
    for (const entry of entries) {
      const topic = topicOf(entry);
      let held = this.#topics.get(topic);
      if (held === undefined) {
        held = new RecentTopic(topic);
        this.#topics.set(topic, held);
      }
      const item = { id: this.#nextId++, entry };
      const sizeBefore = held.size;
      held.add(item, this.#limits, nowMs);
      this.#budget.noteChange(held, sizeBefore);
      added.push(item);
    }
    this.#budget.enforce();
    this.#dirty = true;
    for (const follower of this.#followers) follower(added);
    return Promise.resolve();
  }

  /** The id of the newest entry (0 before any): a cursor taken now. */
  get latestId(): number {
    return this.#nextId - 1;
  }

  get topicCount(): number {
    return this.#topics.size;
  }

  /** History entries held across all topics (current values kept apart are not counted). */
  get entryCount(): number {
    return this.#budget.held;
  }

  /** Every topic under `filter`, by topic name (a stable order for a screen). */
  summaries(filter: string): TopicSummary[] {
    this.#trimAll();
    const matching = [...this.#topics.values()].filter((held) => topicMatches(filter, held.topic));
    matching.sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : 0));
    return matching.map(summarise);
  }

  /** One topic, if the store has seen it. */
  summary(topic: string): TopicSummary | undefined {
    const held = this.#topics.get(topic);
    if (held === undefined) return undefined;
    this.#trim(held, this.#now());
    return summarise(held);
  }

  history(query: HistoryQuery): HistoryPage {
    this.#trimAll();
    const matching: RecentTopic[] = [];
    let truncated = false;
    for (const held of this.#topics.values()) {
      if (!topicMatches(query.filter, held.topic)) continue;
      if (query.fromMs === undefined && query.afterId < held.evictedThrough) truncated = true;
      matching.push(held);
    }
    const { fromMs } = query;
    const page = mergeHistory(
      matching,
      fromMs === undefined ? (held) => held.indexAfter(query.afterId) : (held) => held.indexFrom(fromMs),
      query.limit,
    );
    return { ...page, truncated };
  }

  /** Calls `follower` with every entry accepted from now on, in id order; returns the unfollow. */
  follow(follower: RecentFollower): () => void {
    this.#followers.add(follower);
    return () => this.#followers.delete(follower);
  }

  state(): RecentState {
    return { epoch: this.epoch, nextId: this.#nextId, topics: this.#topics, origins: this.#origins };
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    clearInterval(this.#timer);
    this.#followers.clear();
    try {
      await this.#snapshotting;
      if (this.#failure === undefined) {
        this.#trimAll();
        await writeSnapshot(this.#path, this.state(), true);
      }
    } finally {
      this.#lock.release();
    }
  }

  #snapshot(clean: boolean): Promise<void> {
    if (!this.#dirty || this.#failure !== undefined || this.#closing !== undefined) return this.#snapshotting;
    this.#dirty = false;
    this.#trimAll();
    this.#snapshotting = this.#snapshotting
      .then(() => writeSnapshot(this.#path, this.state(), clean))
      .catch((error: unknown) => {
        // Like the file sink after a failed fsync: no more writes, so the consumer reports a
        // storage failure and the agent restarts, reopening at the last snapshot that is whole.
        this.#failure = error as Error;
      });
    return this.#snapshotting;
  }

  /** Applies the age bound to topics that received nothing lately. */
  #trimAll(): void {
    const nowMs = this.#now();
    for (const held of this.#topics.values()) this.#trim(held, nowMs);
  }

  #trim(held: RecentTopic, nowMs: number): void {
    const sizeBefore = held.size;
    held.trim(this.#limits, nowMs);
    this.#budget.noteChange(held, sizeBefore);
  }

  #checkOpen(): void {
    if (this.#closing !== undefined) throw sinkError('closed', `the sink ${this.name} is closed`);
    if (this.#failure !== undefined) throw this.#failure;
  }
}

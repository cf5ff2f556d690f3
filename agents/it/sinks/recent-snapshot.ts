/**
 * The recent-values store on disk: one snapshot file, replaced whole (temp file, fsync, rename), so
 * a reader after a crash finds an old or a new one, never half of one. What it holds is consistent
 * at one instant: every topic's cursor with exactly the entries it had then, so after a crash the
 * store reopens at those cursors and the consumer replays what came later from the OT agent's log.
 *
 * It holds the OT agents' log epochs (Sink.noteLogEpochs) of the same instant: the store takes an
 * epoch and writes in the order they are called, so a snapshot never has a point of a newer epoch
 * than it names.
 *
 * `clean` is true only in the snapshot written by close(): a store reopened from one has lost
 * nothing, so the cursors (epoch-id) it issued stay valid; after a crash the epoch moves on and the
 * API refuses the old epoch's cursors (AGENT_ERR_API_CURSOR_EXPIRED), whose ids may be reissued.
 *
 * Version 3 is written and read in parts, one JSON document per line: a header (epoch, next id,
 * origins, the topic count), then per topic a record and one line per entry. No string ever holds
 * the whole store (one JSON document of a million entries would be ~160 million characters, and V8
 * refuses strings past ~536 million), and writing it yields to the event loop between parts.
 * Versions 1 and 2 were one JSON document on one line: they still open, and are saved as 3.
 */
import { open } from 'node:fs/promises';
import { quote } from '../../../relay/protocol/command-line.ts';
import { replaceFileDurably } from '../../../relay/protocol/durable-files.ts';
import { decodeLine, encodeLine } from './jsonl-format.ts';
import { isNewOrigin, topicOf } from './entry-checks.ts';
import { MAX_RECENT_TOPICS } from './recent-limits.ts';
import { sinkError, sinkStorageFailure } from './sink-errors.ts';
import { RecentTopic, type RecentEntry } from './recent-topic.ts';

export const SNAPSHOT_FILE = 'recent.json';
const VERSION = 3;
/** Version 2: one JSON document with every topic's entries inline. */
const VERSION_WHOLE = 2;
/** Version 1 is version 2 without origins: what a store saved before them left. */
const VERSION_WITHOUT_ORIGINS = 1;
/** Lines gathered into one write: a few system calls per megabyte, each part far below V8's limit. */
const PART_CHARS = 64 * 1024;

export interface RecentState {
  readonly epoch: number;
  readonly nextId: number;
  readonly topics: Map<string, RecentTopic>;
  /** OT agent -> the log epochs its points came from, newest first. */
  readonly origins: Map<string, readonly string[]>;
}

/** An entry on disk: its id and its line in the JSON Lines sink's one format. */
type EntryRecord = readonly [number, string];

interface TopicRecord {
  readonly topic: string;
  readonly lastSeq: number;
  readonly gaps: number;
  readonly evictedThrough: number;
  /** The current point when it is no longer in the history. */
  readonly current: EntryRecord | null;
  /** Version 3: how many entry lines follow; version 2: the entries, oldest first. */
  readonly entries: number | readonly EntryRecord[];
}

const entryRecord = ({ id, entry }: RecentEntry): EntryRecord => [id, encodeLine(entry).trimEnd()];

/**
 * The snapshot of `state` as it is at the call, as parts to write in order. What it needs is taken
 * at once (each topic's fields and its list of entries, which are immutable); the text is made part
 * by part as the parts are read, while the store goes on taking writes.
 */
export function snapshotParts(state: RecentState, clean: boolean): Iterable<string> {
  const topics = [...state.topics.values()].map((held) => {
    const entries = held.entries();
    const current = held.current;
    const record: TopicRecord = {
      topic: held.topic,
      lastSeq: held.lastSeq,
      gaps: held.gaps,
      evictedThrough: held.evictedThrough,
      current: current !== undefined && !entries.includes(current) ? entryRecord(current) : null,
      entries: entries.length,
    };
    return { record, entries };
  });
  const { epoch, nextId } = state;
  const origins = [...state.origins];
  const header = { version: VERSION, epoch, nextId, clean, origins, topics: topics.length };
  return inParts(
    (function* lines() {
      yield JSON.stringify(header);
      for (const { record, entries } of topics) {
        yield JSON.stringify(record);
        for (const held of entries) yield JSON.stringify(entryRecord(held));
      }
    })(),
  );
}

function* inParts(lines: Iterable<string>): Generator<string> {
  let part = '';
  for (const line of lines) {
    part += `${line}\n`;
    if (part.length >= PART_CHARS) {
      yield part;
      part = '';
    }
  }
  if (part !== '') yield part;
}

export async function writeSnapshot(path: string, state: RecentState, clean: boolean): Promise<void> {
  const parts = snapshotParts(state, clean);
  try {
    await replaceFileDurably(path, parts);
  } catch (cause) {
    throw sinkStorageFailure(`writing ${quote(path)}`, cause);
  }
}

/** The state in `path`, a fresh one if there is none; AGENT_ERR_SINK_CORRUPT for anything else. */
export async function readSnapshot(path: string): Promise<RecentState> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') {
      return { epoch: 1, nextId: 1, topics: new Map(), origins: new Map() };
    }
    throw sinkStorageFailure(`reading ${quote(path)}`, cause);
  }
  try {
    const reader = new SnapshotReader();
    for await (const line of handle.readLines({ encoding: 'utf8', autoClose: false })) reader.take(line);
    return reader.finish();
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).syscall !== undefined) {
      throw sinkStorageFailure(`reading ${quote(path)}`, cause);
    }
    throw sinkError('corrupt', `the recent-values snapshot ${quote(path)} is damaged`, {
      cause,
      hint: `remove it: the store refills from the OT agents' logs`,
    });
  } finally {
    await handle.close();
  }
}

/** Decodes a snapshot line by line; finish() says whether it was whole. */
class SnapshotReader {
  #header: { version: number; epoch: number; nextId: number; clean: boolean } | undefined;
  readonly #topics = new Map<string, RecentTopic>();
  #origins = new Map<string, readonly string[]>();
  /** Version 3: topic records still to come, and the topic whose entry lines are being read. */
  #topicsLeft = 0;
  #topic: TopicReader | undefined;

  take(line: string): void {
    if (line === '') return;
    const parsed = JSON.parse(line) as unknown;
    if (this.#header === undefined) return this.#takeHeader(parsed);
    if (this.#header.version !== VERSION) throw new Error('more after a whole snapshot');
    if (this.#topic !== undefined && this.#topic.left > 0) return this.#topic.take(parsed);
    this.#finishTopic();
    if (this.#topicsLeft === 0) throw new Error('more topics than the header says');
    this.#topicsLeft--;
    const record = parsed as TopicRecord;
    if (!isCount((record.entries as number) + 1)) throw new Error('bad entry count');
    this.#topic = new TopicReader(record, this.#header.nextId, this.#topics);
  }

  finish(): RecentState {
    const header = this.#header;
    if (header === undefined) throw new Error('empty');
    if (this.#topicsLeft > 0 || (this.#topic?.left ?? 0) > 0) throw new Error('cut short');
    this.#finishTopic();
    const { epoch, nextId, clean } = header;
    return { epoch: clean ? epoch : epoch + 1, nextId, topics: this.#topics, origins: this.#origins };
  }

  #takeHeader(parsed: unknown): void {
    const header = parsed as Record<string, unknown>;
    const { version, epoch, nextId, clean } = header;
    const known = version === VERSION || version === VERSION_WHOLE || version === VERSION_WITHOUT_ORIGINS;
    if (!known || !isCount(epoch) || !isCount(nextId) || typeof clean !== 'boolean') {
      throw new Error('not a snapshot of a known version');
    }
    this.#header = { version, epoch, nextId, clean };
    this.#origins = decodeOrigins(version === VERSION_WITHOUT_ORIGINS ? [] : header['origins']);
    if (version === VERSION) {
      if (!isCount((header['topics'] as number) + 1)) throw new Error('bad topic count');
      this.#topicsLeft = header['topics'] as number;
      return;
    }
    if (!Array.isArray(header['topics'])) throw new Error('no topic list');
    for (const record of header['topics'] as TopicRecord[]) {
      if (!Array.isArray(record.entries)) throw new Error('no entry list');
      const topic = new TopicReader({ ...record, entries: record.entries.length }, nextId, this.#topics);
      for (const item of record.entries) topic.take(item);
      topic.finish();
    }
  }

  #finishTopic(): void {
    this.#topic?.finish();
    this.#topic = undefined;
  }
}

/** One topic's record and then its entries, each checked as it comes. */
class TopicReader {
  readonly #held: RecentTopic;
  readonly #record: TopicRecord;
  readonly #nextId: number;
  readonly #topics: Map<string, RecentTopic>;
  /** Entries still to come. */
  left: number;
  #lastId = 0;
  #lastPoint: RecentEntry | undefined;

  constructor(record: TopicRecord, nextId: number, topics: Map<string, RecentTopic>) {
    const { topic, lastSeq, gaps, evictedThrough } = record;
    if (typeof topic !== 'string' || !isCount(lastSeq + 1) || !isCount(gaps + 1)) {
      throw new Error('bad topic');
    }
    if (!isCount(evictedThrough + 1) || topics.has(topic)) throw new Error(`bad topic ${topic}`);
    if (topics.size >= MAX_RECENT_TOPICS) throw new Error('too many topics');
    this.#held = new RecentTopic(topic, lastSeq, gaps, evictedThrough);
    this.#record = record;
    this.#nextId = nextId;
    this.#topics = topics;
    this.left = record.entries as number;
  }

  take(item: unknown): void {
    const entry = decodeItem(item, this.#held.topic, this.#nextId);
    if (entry.id <= this.#lastId) throw new Error('ids out of order');
    this.#lastId = entry.id;
    if (entry.entry.kind === 'point') this.#lastPoint = entry;
    this.#held.restore(entry);
    this.left--;
  }

  finish(): void {
    const { current } = this.#record;
    const outside = current === null ? undefined : decodeItem(current, this.#held.topic, this.#nextId);
    this.#held.current = outside ?? this.#lastPoint;
    this.#topics.set(this.#held.topic, this.#held);
  }
}

function decodeOrigins(list: unknown): Map<string, readonly string[]> {
  if (!Array.isArray(list)) throw new Error('no origin list');
  const origins = new Map<string, readonly string[]>();
  for (const origin of list as unknown[]) {
    if (!Array.isArray(origin) || origin.length !== 2) throw new Error('bad origin');
    const [agent, epochs] = origin as [string, string[]];
    // The checks noteLogEpochs makes, and no agent twice.
    if (origins.has(agent) || !isNewOrigin(origins, agent, epochs, MAX_RECENT_TOPICS)) {
      throw new Error('bad origin');
    }
    origins.set(agent, epochs);
  }
  return origins;
}

function decodeItem(item: unknown, topic: string, nextId: number): RecentEntry {
  if (!Array.isArray(item) || item.length !== 2) throw new Error('bad entry');
  const [id, line] = item as [unknown, unknown];
  if (!isCount(id) || id >= nextId || typeof line !== 'string') throw new Error('bad entry');
  const entry = decodeLine(Buffer.from(line, 'utf8'));
  if (entry === undefined || topicOf(entry) !== topic) throw new Error('bad entry line');
  return { id, entry };
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1;
}

/**
 * Limits of the OT agent's stream log. Each is a named constant with the reason for its value; the
 * ones a deployment may choose (budget, age, segment size) are options checked against these.
 */
import { MAX_FRAME_BYTES, MAX_POINTS_PER_FRAME } from '../../../relay/protocol/limits.ts';

/**
 * One record's bytes. A record is one encoded point (a value, its quality and timestamps: tens of
 * bytes); 64 KiB - 1 leaves room for long string values and keeps its length in two bytes.
 */
export const MAX_RECORD_BYTES = 0xffff;
/** Records in one append: one publish frame's worth, so a batch is logged in one call. */
export const MAX_RECORDS_PER_APPEND = MAX_POINTS_PER_FRAME;
/** Record bytes in one append: what one publish frame can carry. */
export const MAX_APPEND_BYTES = MAX_FRAME_BYTES;
/**
 * Streams the log keeps a sequence counter for. Counters are kept forever (a stream's sequence
 * never restarts), in memory and in every checkpoint; an OT agent has hundreds of streams.
 */
export const MAX_STREAMS = 65_536;
/** Sequence numbers are JS numbers: at a million points/s, one stream needs 285 years to get here. */
export const MAX_SEQ = Number.MAX_SAFE_INTEGER;

/**
 * Bytes one commit (one write and one fdatasync) takes from the queue. A commit of 4 MiB takes
 * ~10 ms on a slow plant-PC disk; the appends at the front of a longer queue should not wait for all
 * of it, and above this size the fdatasync is amortised anyway.
 */
export const MAX_COMMIT_BYTES = 4 * 1024 * 1024;
/**
 * Bytes waiting to be committed before appends are refused: callers are meant to await their
 * appends; this bounds the memory of one that does not (16 full commits).
 */
export const MAX_PENDING_BYTES = 16 * MAX_COMMIT_BYTES;
/**
 * Longest a deployment may let an idle log wait for company before it commits a lone append. A
 * point is sampled every 100 ms or more; more than 10 ms of added latency is visible live.
 */
export const MAX_COMMIT_DELAY_MS = 10;

/**
 * Default segment size. Retention frees disk a segment at a time: 64 MiB is a small slice of a
 * multi-GiB budget, few enough files for a fast listing, and the most a reopen scans (the active one).
 */
export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
/** Smallest segment: a few appends' worth, so tests can cross segments cheaply. */
export const MIN_SEGMENT_BYTES = 4 * 1024;
/** Largest segment: offsets inside a segment are 32-bit in the index. */
export const MAX_SEGMENT_BYTES = 1024 * 1024 * 1024;
/**
 * The budget holds at least this many segments, so deleting the oldest frees at most a quarter of
 * it (and the active segment alone never fills the budget).
 */
export const MIN_SEGMENTS_PER_BUDGET = 4;
/**
 * The active segment is sealed once its oldest record is older than maxAgeMs / this, so age
 * retention deletes data at most a quarter of maxAgeMs late.
 */
export const SEGMENTS_PER_AGE_WINDOW = 4;
/** Age retention is checked at least this often even without appends (and after every seal). */
export const RETENTION_INTERVAL_MS = 30_000;

/**
 * The index keeps one entry per stream per this many segment bytes: a read starts at most this far
 * before its first record, one read call's worth of scanning.
 */
export const INDEX_STRIDE_BYTES = 256 * 1024;
/** Bytes read from a segment at a time, when scanning at open and when reading. */
export const SCAN_CHUNK_BYTES = 256 * 1024;
/** Sealed segments whose index entries stay loaded: a replay walks forward a segment at a time. */
export const INDEX_CACHE_SEGMENTS = 8;

/** Records one read returns at most: one deliver frame's worth. */
export const MAX_READ_RECORDS = MAX_POINTS_PER_FRAME;
/** Record bytes one read returns at most (it always returns at least one record): one frame. */
export const MAX_READ_BYTES = MAX_FRAME_BYTES;
/**
 * Records one read of many streams returns at most: an IT consumer's default replay window
 * (agents/it/consumer.ts), so a round of replay is one pass over the log, and each stream's share
 * of it goes out in as few frames as its share allows.
 */
export const MAX_STREAMS_READ_RECORDS = 65_536;
/**
 * Record bytes one read of many streams returns at most (it always returns at least one record):
 * a full window of 64-byte points. The records are held while a round sends them, so this bounds
 * a round's memory, and a few rounds side by side stay within tens of MiB.
 */
export const MAX_STREAMS_READ_BYTES = 4 * 1024 * 1024;

/**
 * Epochs (opens of the log) the epochs file keeps, oldest dropped first. A consumer's cursor names
 * the epoch it last heard of; one that missed more opens than this (an OT agent in a restart loop
 * while the IT side was away) is treated as unknown: its streams are reset and replayed whole,
 * duplicates and never a loss. ~40 bytes each, rewritten once per open.
 */
export const MAX_EPOCHS = 1024;

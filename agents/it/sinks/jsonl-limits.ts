/**
 * Limits of the JSON Lines file sink. Each is a named constant with the reason for its value.
 */
import { MAX_FRAME_BYTES } from '../../../relay/protocol/limits.ts';

/**
 * Line bytes one write may hold. The consumer hands over what one frame carried, and a point's
 * line is at most ~5x its record (JSON, ISO time, escaped text): 4 frames' worth is ample.
 */
export const MAX_WRITE_BYTES = 4 * MAX_FRAME_BYTES;
/**
 * Bytes one commit (one write and one fdatasync) takes from the queue: ~10 ms on a slow plant-PC
 * disk; writes at the front of a longer queue should not wait for all of it.
 */
export const MAX_COMMIT_BYTES = 4 * 1024 * 1024;
/**
 * Bytes waiting to be committed before writes are refused (AGENT_ERR_SINK_BUSY): four full
 * commits. A consumer that awaits its writes has one frame's worth waiting at most; this bounds the
 * memory of one that does not.
 */
export const MAX_PENDING_BYTES = 4 * MAX_COMMIT_BYTES;
/**
 * The checkpoint is rewritten at the first commit after this many bytes since the last one: a
 * reopen after a crash scans at most this much (plus one commit), ~0.1 s of JSON parsing.
 */
export const CHECKPOINT_EVERY_BYTES = 16 * 1024 * 1024;
/**
 * ...or at the first commit this long after the last one, so a slow trickle of points is not
 * rescanned back to the start of the day. Rewriting costs two fsyncs: rare enough at this period.
 */
export const CHECKPOINT_EVERY_MS = 5_000;

/**
 * The longest line a reopen accepts: a point's longest line (a 256-byte string or 64 numbers, a
 * 128-byte reason, all \u-escaped) is ~3 KiB. A longer one is damage (or zeros a power loss left).
 */
export const MAX_LINE_BYTES = 16 * 1024;
/** Bytes read from a data file at a time when scanning at open. */
export const SCAN_CHUNK_BYTES = 256 * 1024;

/**
 * Retention: whole sealed segments are deleted, oldest first, while the log is over its byte
 * budget or the segment's newest record is older than maxAgeMs. Oldest first keeps what is left
 * of each stream one unbroken run up to its last record, so a reader meets at most one gap, before
 * the first record kept. The active segment is never deleted.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { syncDirectory } from '../../../relay/protocol/durable-files.ts';
import { storageFailure } from './log-errors.ts';
import type { Segment } from './segment.ts';
import type { SegmentSet } from './segment-set.ts';

export interface RetentionLimits {
  readonly maxBytes: number;
  readonly maxAgeMs: number;
  readonly now: number;
  /** Bytes on disk that are not segments (the checkpoint), counted against the budget. */
  readonly otherBytes: number;
}

export interface RetentionOutcome {
  readonly deletedSegments: number;
  readonly freedBytes: number;
}

export function selectExpiredSegments(segments: readonly Segment[], limits: RetentionLimits): Segment[] {
  let bytes = limits.otherBytes;
  for (const segment of segments) bytes += segment.diskBytes();
  const expired: Segment[] = [];
  for (const segment of segments) {
    if (!segment.sealed) break;
    // A sealed segment without records (none is written so, but one may be found) holds nothing to keep.
    const newest = segment.lastAppendMs ?? Number.NEGATIVE_INFINITY;
    if (bytes <= limits.maxBytes && limits.now - newest <= limits.maxAgeMs) break;
    expired.push(segment);
    bytes -= segment.diskBytes();
  }
  return expired;
}

/**
 * Deletes `expired` (selectExpiredSegments') from the set and from `dir`, durably; returns the
 * bytes freed. Their streams' counters must be in the checkpoint first.
 */
export async function deleteSegments(
  dir: string,
  segments: SegmentSet,
  expired: readonly Segment[],
): Promise<number> {
  segments.remove(expired);
  let freedBytes = 0;
  try {
    for (const segment of expired) {
      await rm(join(dir, segment.fileName), { force: true });
      await rm(join(dir, segment.indexFileName), { force: true });
      freedBytes += segment.diskBytes();
    }
    await syncDirectory(dir);
  } catch (cause) {
    throw storageFailure('deleting old segments', cause);
  }
  return freedBytes;
}

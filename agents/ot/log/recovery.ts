/**
 * Opening a log directory: what each segment holds, and a clean end to write after. A sealed
 * segment is known from its index (never read); only the active (newest, unsealed) segment is
 * scanned, and a torn tail (a frame cut short or failing its CRC, what a crash mid-write leaves) is
 * truncated away. Everything before it was written whole, and every append that was reported
 * durable lies before it. Damage anywhere else is refused, not repaired by guessing.
 */
import { open, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { TEMPORARY_SUFFIX, syncDirectory } from '../../../relay/protocol/durable-files.ts';
import { DmzError } from '../../../relay/protocol/errors.ts';
import { restoreCheckpoint } from './checkpoint.ts';
import { FRAME_KIND, definedName, type Frame } from './frame.ts';
import { writeLogFile } from './log-directory.ts';
import { logError, storageFailure } from './log-errors.ts';
import { encodeSegmentIndex, readIndexSummary } from './segment-index.ts';
import { SEGMENT_HEADER_BYTES, isSegmentHeader, parseLogFileName, walkFrames } from './segment-file.ts';
import { Segment } from './segment.ts';
import type { StreamTable } from './stream-table.ts';

export interface Recovery {
  readonly segments: readonly Segment[];
  readonly checkpointBytes: number;
  /** The highest segment number the checkpoint says was given (its segments may be gone). */
  readonly highestSegment: number;
  /** Segment bytes read at open: the active segment's, unless an index was missing. */
  readonly scannedBytes: number;
  /** Bytes of torn tail cut from the active segment. */
  readonly truncatedBytes: number;
}

export async function recoverLog(dir: string, table: StreamTable): Promise<Recovery> {
  const names = await listDirectory(dir);
  const segmentNumbers: number[] = [];
  const indexNumbers = new Set<number>();
  let removed = false;
  for (const name of names) {
    const parsed = parseLogFileName(name);
    if (parsed?.kind === 'segment') segmentNumbers.push(parsed.number);
    else if (parsed?.kind === 'index') indexNumbers.add(parsed.number);
    else if (name.endsWith(TEMPORARY_SUFFIX)) {
      await removeFile(dir, name);
      removed = true;
    }
  }
  segmentNumbers.sort((a, b) => a - b);
  // An index without its segment: retention deleted the segment and stopped before the index.
  for (const number of indexNumbers) {
    if (segmentNumbers.includes(number)) continue;
    await removeFile(dir, new Segment(number).indexFileName);
    removed = true;
  }
  if (removed) await syncDirectory(dir);

  const checkpoint = await restoreCheckpoint(dir, table);
  const segments: Segment[] = [];
  let scannedBytes = 0;
  let truncatedBytes = 0;
  for (const [position, number] of segmentNumbers.entries()) {
    const isNewest = position === segmentNumbers.length - 1;
    const segment = new Segment(number);
    const fileBytes = await sizeOf(dir, segment.fileName);
    const summary = indexNumbers.has(number) ? await readIndexSummary(dir, segment) : undefined;
    if (summary !== undefined && summary.segmentBytes === fileBytes) {
      segment.size = segment.syncedSize = fileBytes;
      segment.sealed = true;
      segment.indexBytes = summary.indexBytes;
      segment.firstAppendMs = summary.firstAppendMs;
      segment.lastAppendMs = summary.lastAppendMs;
      segment.entries = undefined;
      for (const stream of summary.streams) {
        segment.streams.set(stream.id, { ...stream });
        table.restore(stream.id, stream.name, stream.lastSeq);
      }
    } else {
      const end = await scanSegment(dir, segment, fileBytes, table);
      scannedBytes += end;
      if (end < fileBytes && !isNewest) {
        throw logError(
          'corrupt',
          `segment ${number} is damaged inside (a sealed segment is never written again)`,
        );
      }
      if (end < fileBytes) {
        await truncateSegment(dir, segment, end);
        truncatedBytes += fileBytes - end;
      }
      segment.size = segment.syncedSize = end;
      // A sealed segment whose index is lost or stale gets it back; the newest stays active.
      if (!isNewest) {
        const index = encodeSegmentIndex(segment, (id) => table.byId(id)?.name ?? '');
        await writeLogFile(dir, segment.indexFileName, index);
        segment.sealed = true;
        segment.indexBytes = index.byteLength;
        segment.entries = undefined;
      }
    }
    segments.push(segment);
  }
  return {
    segments,
    checkpointBytes: checkpoint.bytes,
    highestSegment: checkpoint.highestSegment,
    scannedBytes,
    truncatedBytes,
  };
}

/** Reads a segment's frames into `segment` and `table`; returns where its last whole frame ends. */
async function scanSegment(
  dir: string,
  segment: Segment,
  fileBytes: number,
  table: StreamTable,
): Promise<number> {
  let handle;
  try {
    handle = await open(join(dir, segment.fileName), 'r');
  } catch (cause) {
    throw storageFailure('opening a segment', cause);
  }
  try {
    const header = Buffer.alloc(SEGMENT_HEADER_BYTES);
    await handle.read(header, 0, SEGMENT_HEADER_BYTES, 0);
    // Headers are written aside and renamed into place: one that does not verify is damage, not a tear.
    if (!isSegmentHeader(header, segment.number)) {
      throw logError('corrupt', `segment ${segment.number} has no valid header`);
    }
    const names = new Map<number, string>();
    let problem: string | undefined;
    const visit = (frame: Frame, offset: number): boolean => {
      problem = noteFrame(segment, names, frame, offset);
      return problem === undefined;
    };
    const walk = await walkFrames(handle, SEGMENT_HEADER_BYTES, fileBytes, visit);
    if (problem !== undefined) throw logError('corrupt', `segment ${segment.number}: ${problem}`);
    for (const [id, name] of names) table.restore(id, name, segment.streams.get(id)?.lastSeq ?? 0);
    return walk.end;
  } catch (cause) {
    if (cause instanceof DmzError) throw cause;
    throw storageFailure('scanning a segment', cause);
  } finally {
    await handle.close();
  }
}

/** Records one verified frame; a frame that verifies but contradicts the ones before it is damage. */
function noteFrame(
  segment: Segment,
  names: Map<number, string>,
  frame: Frame,
  offset: number,
): string | undefined {
  if (frame.kind === FRAME_KIND.streamDefinition) {
    if (names.has(frame.streamId)) return 'a stream is defined twice';
    names.set(frame.streamId, definedName(frame));
    segment.defined.add(frame.streamId);
    return undefined;
  }
  if (!names.has(frame.streamId)) return 'records of a stream the segment does not define';
  const before = segment.streams.get(frame.streamId)?.lastSeq ?? 0;
  if (frame.firstSeq <= before) return 'sequence numbers of a stream go backwards';
  segment.noteRecords(
    frame.streamId,
    frame.firstSeq,
    frame.firstSeq + frame.count - 1,
    offset,
    frame.appendedAtMs,
  );
  return undefined;
}

async function truncateSegment(dir: string, segment: Segment, end: number): Promise<void> {
  try {
    const handle = await open(join(dir, segment.fileName), 'r+');
    try {
      await handle.truncate(end);
      await handle.datasync();
    } finally {
      await handle.close();
    }
  } catch (cause) {
    throw storageFailure('truncating a torn tail', cause);
  }
}

async function listDirectory(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (cause) {
    throw storageFailure('listing the log directory', cause);
  }
}

async function sizeOf(dir: string, name: string): Promise<number> {
  try {
    return (await stat(join(dir, name))).size;
  } catch (cause) {
    throw storageFailure('reading a segment', cause);
  }
}

async function removeFile(dir: string, name: string): Promise<void> {
  try {
    await rm(join(dir, name), { force: true });
  } catch (cause) {
    throw storageFailure('removing a leftover file', cause);
  }
}

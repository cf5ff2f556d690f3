/**
 * The checkpoint (`streams.checkpoint`): every stream's id, topic and last sequence number, and
 * the highest segment number given so far, written crash-safely just before retention deletes
 * segments. Segments carry their streams' counters themselves; the checkpoint keeps the counters
 * of streams whose segments are gone, so a restart after retention still never reuses a sequence
 * number, and the segment numbering, so no segment number is given twice (the epochs, epochs.ts,
 * say where each epoch starts by segment number).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MAX_SEQ } from './limits.ts';
import { writeLogFile } from './log-directory.ts';
import { logError, storageFailure } from './log-errors.ts';
import type { StreamTable } from './stream-table.ts';

export const CHECKPOINT_FILE = 'streams.checkpoint';
const CHECKPOINT_FORMAT = 'dmz-stream-log-checkpoint/1';

type CheckpointEntry = readonly [id: number, name: string, lastSeq: number];

export async function writeCheckpoint(
  dir: string,
  table: StreamTable,
  highestSegment: number,
): Promise<number> {
  const streams: CheckpointEntry[] = [];
  for (const stream of table.all()) streams.push([stream.id, stream.name, stream.durableSeq]);
  const contents = Buffer.from(
    JSON.stringify({ format: CHECKPOINT_FORMAT, streams, highestSegment }),
    'utf8',
  );
  await writeLogFile(dir, CHECKPOINT_FILE, contents);
  return contents.byteLength;
}

/**
 * Restores the checkpoint into `table`; returns its size on disk (0 when there is none yet) and
 * the highest segment number it says was given (0 for a checkpoint written before it said so).
 */
export async function restoreCheckpoint(
  dir: string,
  table: StreamTable,
): Promise<{ bytes: number; highestSegment: number }> {
  let text: string;
  try {
    text = await readFile(join(dir, CHECKPOINT_FILE), 'utf8');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return { bytes: 0, highestSegment: 0 };
    throw storageFailure('reading the checkpoint', cause);
  }
  const damaged = (cause?: unknown): Error =>
    logError('corrupt', 'the stream log checkpoint does not parse', cause === undefined ? {} : { cause });
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw damaged(cause);
  }
  if (typeof parsed !== 'object' || parsed === null) throw damaged();
  const { format, streams, highestSegment = 0 } = parsed as Record<string, unknown>;
  if (format !== CHECKPOINT_FORMAT || !Array.isArray(streams)) throw damaged();
  if (typeof highestSegment !== 'number' || !Number.isSafeInteger(highestSegment) || highestSegment < 0) {
    throw damaged();
  }
  for (const entry of streams as unknown[]) {
    if (!Array.isArray(entry) || entry.length !== 3) throw damaged();
    const [id, name, lastSeq] = entry as unknown[];
    if (typeof id !== 'number' || typeof name !== 'string' || typeof lastSeq !== 'number') throw damaged();
    if (!Number.isSafeInteger(lastSeq) || lastSeq < 0 || lastSeq > MAX_SEQ) throw damaged();
    table.restore(id, name, lastSeq);
  }
  return { bytes: Buffer.byteLength(text, 'utf8'), highestSegment };
}

/**
 * Opening a file sink's directory: the cursors it holds, and a clean end to write after. The
 * checkpoint gives the cursors up to a file and offset; only the lines after it are read (the rest
 * of that day's file, and any later day's). A torn last line (no newline, or not a whole entry:
 * what a crash mid-write leaves, never acknowledged) is cut off. Damage anywhere else is an error
 * that names the file: guessing would lose or duplicate points.
 */
import { open, readdir, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { quote } from '../../../relay/protocol/command-line.ts';
import { TEMPORARY_SUFFIX } from '../../../relay/protocol/durable-files.ts';
import { DmzError } from '../../../relay/protocol/errors.ts';
import { cursorAfter, findOrderProblem, setCursor, topicOf } from './entry-checks.ts';
import { CHECKPOINT_FILE, readCheckpoint } from './jsonl-checkpoint.ts';
import { decodeLine, isDataFileName } from './jsonl-format.ts';
import { MAX_LINE_BYTES, SCAN_CHUNK_BYTES } from './jsonl-limits.ts';
import { sinkError, sinkStorageFailure } from './sink-errors.ts';

const NEWLINE = 0x0a;

export interface SinkRecovery {
  readonly cursors: Map<string, number>;
  /** OT agent -> its log epochs, newest first, as the checkpoint has them. */
  readonly origins: Map<string, readonly string[]>;
  /** The newest data file and where its last whole line ends (undefined: no data file yet). */
  readonly end: { readonly file: string; readonly offset: number } | undefined;
  /** Bytes read at open: the lines after the checkpoint. */
  readonly scannedBytes: number;
  /** Torn-tail bytes cut off at open. */
  readonly truncatedBytes: number;
}

export async function recoverSink(dir: string): Promise<SinkRecovery> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (cause) {
    throw sinkStorageFailure('listing the sink directory', cause);
  }
  const files = names.filter(isDataFileName).sort();
  // A checkpoint written aside by a process that died before its rename: never read, only in the way.
  const leftovers = names.filter(
    (name) => name.startsWith(`${CHECKPOINT_FILE}.`) && name.endsWith(TEMPORARY_SUFFIX),
  );
  try {
    for (const name of leftovers) await rm(join(dir, name), { force: true });
  } catch (cause) {
    throw sinkStorageFailure('removing a half-written checkpoint', cause);
  }
  const checkpoint = await readCheckpoint(dir);
  const cursors = new Map(checkpoint?.cursors ?? []);
  const origins = new Map(checkpoint?.origins ?? []);
  let first = 0;
  if (checkpoint !== undefined) {
    first = files.indexOf(checkpoint.file);
    if (first < 0) {
      throw sinkError(
        'corrupt',
        `the sink checkpoint ${quote(join(dir, CHECKPOINT_FILE))} covers ${quote(join(dir, checkpoint.file))}, which is missing`,
        { hint: 'put the newest data file back: the sink will not guess its cursors' },
      );
    }
  }
  let scannedBytes = 0;
  let truncatedBytes = 0;
  let end: SinkRecovery['end'];
  for (const [index, file] of files.entries()) {
    if (index < first) continue;
    const start = index === first ? (checkpoint?.offset ?? 0) : 0;
    const scan = await scanDataFile(join(dir, file), start, index === files.length - 1, cursors);
    scannedBytes += scan.size - start;
    truncatedBytes += scan.size - scan.end;
    end = { file, offset: scan.end };
  }
  return { cursors, origins, end, scannedBytes, truncatedBytes };
}

interface Line {
  readonly offset: number;
  /** Undefined for a line longer than MAX_LINE_BYTES (its bytes are not kept). */
  readonly bytes: Buffer | undefined;
  readonly terminated: boolean;
}

/**
 * Applies the lines of one file from `start` to `cursors`; returns where its last whole line ends
 * (the file is cut there) and how long the file was.
 */
async function scanDataFile(
  path: string,
  start: number,
  isNewest: boolean,
  cursors: Map<string, number>,
): Promise<{ end: number; size: number }> {
  const damaged = (offset: number, why: string): DmzError =>
    sinkError('corrupt', `the sink file ${quote(path)} is damaged at byte ${offset}: ${why}`, {
      hint: 'restore it from a backup; the sink will not skip or guess lines',
    });
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, 'r+');
    const size = (await handle.stat()).size;
    if (size < start) throw damaged(size, `it ends before the checkpoint's offset ${start}`);
    let end = start;
    let torn: { offset: number; why: string } | undefined;
    for await (const line of readLines(handle, start, size)) {
      // Only the very last line may be torn: anything after a bad line means the bad line is damage.
      if (torn !== undefined) throw damaged(torn.offset, torn.why);
      const entry = line.bytes === undefined ? undefined : decodeLine(line.bytes);
      if (!line.terminated || entry === undefined || line.bytes === undefined) {
        torn = {
          offset: line.offset,
          why: line.terminated ? 'a line is not an entry' : 'no newline at its end',
        };
        continue;
      }
      const topic = topicOf(entry);
      const problem = findOrderProblem(entry, cursors.get(topic) ?? 0);
      if (problem !== undefined) throw damaged(line.offset, problem);
      setCursor(cursors, topic, cursorAfter(entry));
      end = line.offset + line.bytes.byteLength + 1;
    }
    if (torn === undefined) return { end, size };
    if (!isNewest) throw damaged(torn.offset, `${torn.why} (only the newest file may end torn)`);
    await handle.truncate(end);
    await handle.datasync();
    return { end, size };
  } catch (cause) {
    if (cause instanceof DmzError) throw cause;
    throw sinkStorageFailure('scanning a data file', cause);
  } finally {
    await handle?.close();
  }
}

/** The lines of `handle` from `start` to `size`, read SCAN_CHUNK_BYTES at a time. */
async function* readLines(handle: FileHandle, start: number, size: number): AsyncGenerator<Line> {
  const chunk = Buffer.allocUnsafe(SCAN_CHUNK_BYTES);
  let position = start;
  let lineStart = start;
  let pieces: Buffer[] = [];
  let pieceBytes = 0;
  let overlong = false;
  while (position < size) {
    const { bytesRead } = await handle.read(chunk, 0, Math.min(SCAN_CHUNK_BYTES, size - position), position);
    if (bytesRead === 0) break;
    const read = chunk.subarray(0, bytesRead);
    let from = 0;
    for (let newline = read.indexOf(NEWLINE); newline >= 0; newline = read.indexOf(NEWLINE, from)) {
      const length = pieceBytes + newline - from;
      const bytes =
        overlong || length > MAX_LINE_BYTES
          ? undefined
          : Buffer.concat([...pieces, read.subarray(from, newline)]);
      yield { offset: lineStart, bytes, terminated: true };
      lineStart = position + newline + 1;
      from = newline + 1;
      pieces = [];
      pieceBytes = 0;
      overlong = false;
    }
    const rest = read.subarray(from);
    pieceBytes += rest.byteLength;
    if (pieceBytes > MAX_LINE_BYTES) {
      overlong = true;
      pieces = [];
    } else if (rest.byteLength > 0) pieces.push(Buffer.from(rest));
    position += bytesRead;
  }
  if (lineStart < position) yield { offset: lineStart, bytes: undefined, terminated: false };
}

/**
 * The file sink's checkpoint (`sink.checkpoint`): every topic's last sequence, every OT agent's log
 * epochs (the origin lines, jsonl-format.ts), and the data file and byte offset they hold for. Everything before that offset (and every older day's file) is
 * known from it, so a reopen scans only the lines after it. Rewritten crash-safely (aside, fsync,
 * rename, fsync the directory), so it is always a whole, earlier state, never a torn one.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { quote } from '../../../relay/protocol/command-line.ts';
import { replaceFileDurably } from '../../../relay/protocol/durable-files.ts';
import { isAgentName } from '../../../relay/protocol/identity.ts';
import { isValidTopic } from '../../../relay/protocol/topics.ts';
import { isEpochList } from '../../points/resume-cursor.ts';
import { isDataFileName } from './jsonl-format.ts';
import { sinkError, sinkStorageFailure } from './sink-errors.ts';

export const CHECKPOINT_FILE = 'sink.checkpoint';
const CHECKPOINT_FORMAT = 'dmz-jsonl-sink-checkpoint/2';
/** Format 1 is format 2 without origins: what a sink written before them left. */
const CHECKPOINT_FORMAT_WITHOUT_ORIGINS = 'dmz-jsonl-sink-checkpoint/1';

export interface SinkCheckpoint {
  /** The data file the cursors hold for, up to `offset`. */
  readonly file: string;
  readonly offset: number;
  readonly cursors: ReadonlyMap<string, number>;
  /** OT agent -> its log epochs, newest first. */
  readonly origins: ReadonlyMap<string, readonly string[]>;
}

/** Writes `checkpoint`; returns its size in bytes. */
export async function writeCheckpoint(dir: string, checkpoint: SinkCheckpoint): Promise<number> {
  const { file, offset, cursors, origins } = checkpoint;
  const contents = Buffer.from(
    JSON.stringify({ format: CHECKPOINT_FORMAT, file, offset, cursors: [...cursors], origins: [...origins] }),
    'utf8',
  );
  try {
    await replaceFileDurably(join(dir, CHECKPOINT_FILE), contents);
  } catch (cause) {
    throw sinkStorageFailure('writing the checkpoint', cause);
  }
  return contents.byteLength;
}

/** The checkpoint in `dir`, or undefined when there is none yet. */
export async function readCheckpoint(dir: string): Promise<SinkCheckpoint | undefined> {
  const path = join(dir, CHECKPOINT_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw sinkStorageFailure('reading the checkpoint', cause);
  }
  const damaged = (why: string, cause?: unknown): Error =>
    sinkError('corrupt', `the sink checkpoint ${quote(path)} is damaged: ${why}`, {
      ...(cause === undefined ? {} : { cause }),
      hint: `restore it from a backup, or remove it: the sink then rescans its data files in ${quote(dir)}`,
    });
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw damaged('it does not parse', cause);
  }
  if (typeof parsed !== 'object' || parsed === null) throw damaged('it is not an object');
  const { format, file, offset, cursors, origins } = parsed as Record<string, unknown>;
  if (format !== CHECKPOINT_FORMAT && format !== CHECKPOINT_FORMAT_WITHOUT_ORIGINS) {
    throw damaged('unknown format');
  }
  if (typeof file !== 'string' || !isDataFileName(file)) throw damaged('it names no data file');
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) {
    throw damaged('its offset is not a byte offset');
  }
  if (!Array.isArray(cursors)) throw damaged('it holds no cursors');
  const restored = new Map<string, number>();
  for (const cursor of cursors as unknown[]) {
    if (!Array.isArray(cursor) || cursor.length !== 2) throw damaged('a cursor is not [topic, seq]');
    const [topic, seq] = cursor as unknown[];
    if (typeof topic !== 'string' || !isValidTopic(topic) || restored.has(topic)) {
      throw damaged('a cursor topic is invalid or repeated');
    }
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) {
      throw damaged('a cursor sequence is not a sequence number');
    }
    restored.set(topic, seq);
  }
  const restoredOrigins = new Map<string, readonly string[]>();
  const originList = format === CHECKPOINT_FORMAT ? origins : [];
  if (!Array.isArray(originList)) throw damaged('it holds no origins');
  for (const origin of originList as unknown[]) {
    if (!Array.isArray(origin) || origin.length !== 2) throw damaged('an origin is not [agent, epochs]');
    const [agent, epochs] = origin as unknown[];
    if (typeof agent !== 'string' || !isAgentName(agent) || restoredOrigins.has(agent)) {
      throw damaged('an origin agent is invalid or repeated');
    }
    if (!Array.isArray(epochs) || epochs.length === 0 || !isEpochList(epochs)) {
      throw damaged('an origin names no valid log epochs');
    }
    restoredOrigins.set(agent, epochs);
  }
  return { file, offset, cursors: restored, origins: restoredOrigins };
}

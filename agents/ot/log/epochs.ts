/**
 * The log's epochs (`log.epochs`): every open of the log starts a new epoch, with a random 8-byte
 * id, and its records go to segments of its own (the open seals the segment before). The file
 * lists the epochs, oldest first, each with the first segment number its records went to. An IT
 * consumer's cursor names the newest epochs the OT agent told it of, and the list says how much
 * of what the consumer holds is still this log's:
 *
 * - a log re-created (wiped, a new disk) has none of the consumer's epochs: nothing it holds is;
 * - a log restored from an older copy has the epochs the copy had, then a new one: what the
 *   consumer holds of a stream beyond where that new epoch starts came from a run of the log the
 *   copy never saw, and the same sequence numbers now name other points.
 *
 * One id per creation of the log would catch the first case only: a restored copy carries the id
 * it was made with. This is Kafka's leader epoch cache (epoch -> start offset) for a log of many
 * streams: a start is a segment, and a stream's start in it is its first record there.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EPOCH_ID_BYTES } from '../../points/resume-cursor.ts';
import { MAX_EPOCHS } from './limits.ts';
import { writeLogFile } from './log-directory.ts';
import { logError, storageFailure } from './log-errors.ts';
import type { Segment } from './segment.ts';
import type { StreamTable } from './stream-table.ts';

export const EPOCHS_FILE = 'log.epochs';
const EPOCHS_FORMAT = 'dmz-stream-log-epochs/1';
const EPOCH_ID = /^[0-9a-f]{16}$/;

export interface LogEpoch {
  /** 16 hex digits. */
  readonly id: string;
  /** The number of the first segment that can hold this epoch's records. */
  readonly firstSegment: number;
}

/** What a consumer's points of each stream still agree with: beyond limit(stream), reset them. */
export interface EpochAgreement {
  limit(stream: string): number;
  /** Why what lies beyond the limit is not this log's, for the reset record. */
  readonly reason: string;
  /** True when the reason holds for every stream, those the log has not seen (again) included. */
  readonly wholeLog?: boolean;
}

/** The epochs in `dir`, oldest first ([] for a log that has none yet), and the file's size. */
export async function readEpochs(dir: string): Promise<{ epochs: LogEpoch[]; bytes: number }> {
  let text: string;
  try {
    text = await readFile(join(dir, EPOCHS_FILE), 'utf8');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return { epochs: [], bytes: 0 };
    throw storageFailure('reading the epochs', cause);
  }
  const damaged = (cause?: unknown): Error =>
    logError('corrupt', 'the stream log epochs file does not parse', cause === undefined ? {} : { cause });
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw damaged(cause);
  }
  const { format, epochs } = (parsed ?? {}) as { format?: unknown; epochs?: unknown };
  if (format !== EPOCHS_FORMAT || !Array.isArray(epochs)) throw damaged();
  const read: LogEpoch[] = [];
  for (const entry of epochs as unknown[]) {
    if (!Array.isArray(entry) || entry.length !== 2) throw damaged();
    const [id, firstSegment] = entry as unknown[];
    if (typeof id !== 'string' || !EPOCH_ID.test(id)) throw damaged();
    if (typeof firstSegment !== 'number' || !Number.isSafeInteger(firstSegment) || firstSegment < 1) {
      throw damaged();
    }
    if (firstSegment < (read.at(-1)?.firstSegment ?? 1)) throw damaged();
    read.push({ id, firstSegment });
  }
  return { epochs: read, bytes: Buffer.byteLength(text, 'utf8') };
}

/**
 * Starts a new epoch whose records go to `firstSegment` on, durably, before the log takes any
 * append; returns the epochs with it (newest last) and the file's size.
 */
export async function startEpoch(
  dir: string,
  previous: readonly LogEpoch[],
  firstSegment: number,
): Promise<{ epochs: LogEpoch[]; bytes: number }> {
  const epoch = { id: randomBytes(EPOCH_ID_BYTES).toString('hex'), firstSegment };
  const epochs = [...previous, epoch].slice(-MAX_EPOCHS);
  const contents = Buffer.from(
    JSON.stringify({ format: EPOCHS_FORMAT, epochs: epochs.map((e) => [e.id, e.firstSegment]) }),
    'utf8',
  );
  await writeLogFile(dir, EPOCHS_FILE, contents);
  return { epochs, bytes: contents.byteLength };
}

export interface AgreementSource {
  /** Oldest first, the current one last. */
  readonly epochs: readonly LogEpoch[];
  /** Retained segments, oldest first. */
  readonly segments: readonly Segment[];
  /** The highest segment number ever given in this log (0 if none). */
  readonly highestSegment: number;
  readonly table: StreamTable;
}

/**
 * How far a consumer whose cursor names `known` epochs (newest first) agrees with this log, stream
 * by stream. No `known`: the cursor comes from a sink that keeps no epochs, and only what lies
 * beyond the log's last record is certainly not the log's.
 */
export function agreeWith(source: AgreementSource, known: readonly string[]): EpochAgreement {
  const lastSeq = (stream: string) => source.table.byName(stream)?.durableSeq ?? 0;
  const behind = { limit: lastSeq, reason: 'the OT log ends before this point' };
  if (known.length === 0) return behind;
  const index = newestShared(source.epochs, known);
  if (index === undefined) {
    return {
      limit: () => 0,
      reason: "the OT log was re-created: none of its epochs is the cursor's",
      wholeLog: true,
    };
  }
  const next = source.epochs[index + 1];
  if (next === undefined) return behind;
  const oldest = source.segments[0]?.number;
  if (source.highestSegment >= next.firstSegment && (oldest === undefined || oldest > next.firstSegment)) {
    // Retention deleted where the log went on after the consumer's epoch: nothing to compare with.
    return {
      limit: () => 0,
      reason: 'the OT log no longer holds where it went on after the cursor',
      wholeLog: true,
    };
  }
  const firstAfter = new Map<number, number>();
  for (const segment of source.segments) {
    if (segment.number < next.firstSegment) continue;
    for (const [id, stream] of segment.streams) if (!firstAfter.has(id)) firstAfter.set(id, stream.firstSeq);
  }
  return {
    limit: (stream) => {
      const state = source.table.byName(stream);
      if (state === undefined) return 0;
      const first = firstAfter.get(state.id);
      return first === undefined ? state.durableSeq : first - 1;
    },
    reason: 'the OT log was restored from an older copy',
  };
}

function newestShared(epochs: readonly LogEpoch[], known: readonly string[]): number | undefined {
  for (const id of known) {
    for (let index = epochs.length - 1; index >= 0; index--) if (epochs[index]?.id === id) return index;
  }
  return undefined;
}

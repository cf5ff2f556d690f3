/**
 * An IT consumer's resume cursor: what it sends in `subscribe.resume`, opaque to the relay and read
 * by the OT agent alone. It says where the consumer stands in every stream it has seen under the
 * subscription's filter, which run of the OT agent's log those points came from, so the OT agent
 * replays exactly what the consumer lacks, and how large a round of replay may be before the
 * consumer asks for the next one:
 *
 *   byte 0   version (2; version 1 is the same without the epochs, and still decodes)
 *   byte 1   streams the consumer has never seen: 0 replay from the earliest retained point
 *   varint   window: the most points one round replays before it ends with "more"
 *   byte     epochs named (0 to MAX_CURSOR_EPOCHS), then 8 bytes each, newest first: the OT log's
 *            epochs (agents/ot/log/epochs.ts) as the OT agent last told this consumer. None: the
 *            consumer does not know them (a sink that keeps none), and the OT agent can only check
 *            that no position is ahead of its log.
 *   then, to the end, per stream: 8 bytes of SHA-256(topic), varint last sequence held
 *
 * A stream is named by a 64-bit hash of its topic (a topic is up to 256 bytes): a subscription can
 * then carry a few thousand streams (MAX_RESUME_BYTES). Two of a plant's topics sharing a hash
 * has odds near 2^-40 at 5,000 streams.
 */
import { createHash } from 'node:crypto';
import { DmzError } from '../../relay/protocol/errors.ts';
import { MAX_POINTS_PER_FRAME, MAX_RESUME_BYTES } from '../../relay/protocol/limits.ts';
import { RecordReader, RecordWriter } from './record-bytes.ts';

const VERSION = 2;
const VERSION_WITHOUT_EPOCHS = 1;
const START_EARLIEST = 0;
/** A stream key: the first 8 bytes of SHA-256 of its topic. */
export const STREAM_KEY_BYTES = 8;
/** An OT log epoch's id: 8 random bytes, so two runs of any logs share one with odds near 2^-64. */
export const EPOCH_ID_BYTES = 8;
/**
 * Epochs a cursor names at most: the newest few the OT agent told the consumer of. One would do
 * unless the OT log is restored from a copy older than the consumer's newest epoch; then an older
 * one still names where the two agree. 65 bytes of the 64 KiB a cursor may take.
 */
export const MAX_CURSOR_EPOCHS = 8;
/** A window below one frame would end every round after a single batch. */
export const MIN_REPLAY_WINDOW = MAX_POINTS_PER_FRAME;
const EPOCH_ID = /^[0-9a-f]{16}$/;

export interface ResumeCursor {
  /** Points a round replays at most; the OT agent then ends the round with "more". */
  readonly window: number;
  /** The OT log's epochs the positions were reached in, newest first, as 16 hex digits each; [] if unknown. */
  readonly epochs: readonly string[];
  /** Last sequence held, by stream key (streamKey of the topic). */
  readonly positions: ReadonlyMap<string, number>;
}

/** The 64-bit name of a stream in a cursor, as 16 hex digits. */
export function streamKey(topic: string): string {
  return createHash('sha256')
    .update(topic)
    .digest('hex')
    .slice(0, STREAM_KEY_BYTES * 2);
}

/** Whether `epochs` is a list of log epochs a cursor (or an origin record) can carry. */
export function isEpochList(epochs: readonly unknown[]): epochs is readonly string[] {
  return (
    epochs.length <= MAX_CURSOR_EPOCHS &&
    new Set(epochs).size === epochs.length &&
    epochs.every((epoch) => typeof epoch === 'string' && EPOCH_ID.test(epoch))
  );
}

/**
 * `positions`: topic -> last sequence held; `epochs`: the OT log's epochs they were reached in,
 * newest first. Refuses a cursor larger than a subscribe can carry.
 */
export function encodeResumeCursor(
  window: number,
  positions: ReadonlyMap<string, number>,
  epochs: readonly string[] = [],
): Uint8Array {
  if (!Number.isSafeInteger(window) || window < MIN_REPLAY_WINDOW) {
    throw invalid(`a replay window is a whole number of at least ${MIN_REPLAY_WINDOW} points`);
  }
  if (!isEpochList(epochs)) {
    throw invalid(`a cursor names at most ${MAX_CURSOR_EPOCHS} distinct log epochs of 16 hex digits`);
  }
  const writer = new RecordWriter();
  writer.byte(VERSION);
  writer.byte(START_EARLIEST);
  writer.varint(window);
  writer.byte(epochs.length);
  for (const epoch of epochs) writer.raw(Buffer.from(epoch, 'hex'));
  for (const [topic, lastSeq] of positions) {
    if (!Number.isSafeInteger(lastSeq) || lastSeq < 0) throw invalid('a position is a sequence number');
    writer.raw(Buffer.from(streamKey(topic), 'hex'));
    writer.varint(lastSeq);
  }
  const cursor = writer.finish();
  if (cursor.byteLength > MAX_RESUME_BYTES) {
    throw invalid(
      `${positions.size} streams do not fit one subscription's cursor (${MAX_RESUME_BYTES} bytes); split the filter`,
    );
  }
  return cursor;
}

export function decodeResumeCursor(bytes: Uint8Array): ResumeCursor {
  const reader = new RecordReader(bytes, invalid);
  const version = reader.byte();
  if (version !== VERSION && version !== VERSION_WITHOUT_EPOCHS) throw invalid('unknown cursor version');
  if (reader.byte() !== START_EARLIEST) throw invalid('unknown start for unseen streams');
  const window = reader.varint();
  if (window < MIN_REPLAY_WINDOW) throw invalid('replay window too small');
  const epochs: string[] = [];
  if (version === VERSION) {
    const count = reader.byte();
    if (count > MAX_CURSOR_EPOCHS) throw invalid(`more than ${MAX_CURSOR_EPOCHS} log epochs`);
    for (let index = 0; index < count; index++) {
      const epoch = Buffer.from(reader.raw(EPOCH_ID_BYTES)).toString('hex');
      if (epochs.includes(epoch)) throw invalid('a log epoch appears twice');
      epochs.push(epoch);
    }
  }
  const positions = new Map<string, number>();
  while (!reader.atEnd()) {
    const key = Buffer.from(reader.raw(STREAM_KEY_BYTES)).toString('hex');
    if (positions.has(key)) throw invalid('a stream appears twice');
    positions.set(key, reader.varint());
  }
  return { window, epochs, positions };
}

function invalid(detail: string, cause?: unknown): DmzError {
  return new DmzError('AGENT_ERR_RESUME_CURSOR', `resume cursor is invalid: ${detail}`, { cause });
}

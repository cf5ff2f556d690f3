/**
 * An IT consumer's resume cursor: what it sends in `subscribe.resume`, opaque to the relay and read
 * by the OT agent alone. It says where the consumer stands in every stream it has seen under the
 * subscription's filter, so the OT agent replays exactly what the consumer lacks, and how large a
 * round of replay may be before the consumer asks for the next one:
 *
 *   byte 0   version (1)
 *   byte 1   streams the consumer has never seen: 0 replay from the earliest retained point
 *   varint   window: the most points one round replays before it ends with "more"
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

const VERSION = 1;
const START_EARLIEST = 0;
const KEY_BYTES = 8;
/** A window below one frame would end every round after a single batch. */
export const MIN_REPLAY_WINDOW = MAX_POINTS_PER_FRAME;

export interface ResumeCursor {
  /** Points a round replays at most; the OT agent then ends the round with "more". */
  readonly window: number;
  /** Last sequence held, by stream key (streamKey of the topic). */
  readonly positions: ReadonlyMap<string, number>;
}

/** The 64-bit name of a stream in a cursor, as 16 hex digits. */
export function streamKey(topic: string): string {
  return createHash('sha256')
    .update(topic)
    .digest('hex')
    .slice(0, KEY_BYTES * 2);
}

/** `positions`: topic -> last sequence held. Refuses a cursor larger than a subscribe can carry. */
export function encodeResumeCursor(window: number, positions: ReadonlyMap<string, number>): Uint8Array {
  if (!Number.isSafeInteger(window) || window < MIN_REPLAY_WINDOW) {
    throw invalid(`a replay window is a whole number of at least ${MIN_REPLAY_WINDOW} points`);
  }
  const writer = new RecordWriter();
  writer.byte(VERSION);
  writer.byte(START_EARLIEST);
  writer.varint(window);
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
  if (reader.byte() !== VERSION) throw invalid('unknown cursor version');
  if (reader.byte() !== START_EARLIEST) throw invalid('unknown start for unseen streams');
  const window = reader.varint();
  if (window < MIN_REPLAY_WINDOW) throw invalid('replay window too small');
  const positions = new Map<string, number>();
  while (!reader.atEnd()) {
    const key = Buffer.from(reader.raw(KEY_BYTES)).toString('hex');
    if (positions.has(key)) throw invalid('a stream appears twice');
    positions.set(key, reader.varint());
  }
  return { window, positions };
}

function invalid(detail: string, cause?: unknown): DmzError {
  return new DmzError('AGENT_ERR_RESUME_CURSOR', `resume cursor is invalid: ${detail}`, { cause });
}

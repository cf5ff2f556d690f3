/**
 * What a replayed batch (a publish directed to one session) may hold besides points: a gap, where
 * the OT agent's log no longer has the points asked for; the end of a replay round; the log's
 * origin, which says what run of the log the round comes from; and a reset, where a stream's
 * numbers started again. They share the point encoding's first byte, with value kinds no point
 * uses (point.ts: 0-5, in bits 0-2), so one decoder tells every record of a batch apart:
 *
 *   gap         0x07, varint last sequence gone (`to`), varint length + UTF-8 reason
 *               The batch's `seq` is the first sequence gone; the batch holds this one record.
 *   replay end  0x06, one byte: 1 if the round stopped at its window with more to replay, else 0
 *               It takes no sequence number: the batch's `seq` is the stream's next one.
 *   origin      0x0E, one byte n (1 to MAX_CURSOR_EPOCHS), n log epochs of 8 bytes, newest
 *               (the log's current one) first. A round's first record after its resets; the
 *               consumer names these epochs in its next cursor.
 *   reset       0x0F, 8-byte stream key (resume-cursor.ts), varint `from`, varint length + UTF-8
 *               reason: the points the consumer holds of that stream from `from` on are not in
 *               this log (it was re-created, or restored from an older copy); the stream goes on
 *               at `from`. Origin and resets go on the replay-end record's topic, with `seq` 0,
 *               several to a batch.
 */
import { DmzError } from '../../relay/protocol/errors.ts';
import { decodePoint, MAX_REASON_BYTES, type PointReading } from './point.ts';
import { RecordReader, RecordWriter } from './record-bytes.ts';
import { EPOCH_ID_BYTES, isEpochList, MAX_CURSOR_EPOCHS, STREAM_KEY_BYTES } from './resume-cursor.ts';

const REPLAY_END = 0x06;
const GAP = 0x07;
const ORIGIN = 0x0e;
const RESET = 0x0f;
const KIND_MASK = 0b111;
const KEY = /^[0-9a-f]{16}$/;

export type StreamRecord =
  | { readonly kind: 'point'; readonly reading: PointReading }
  | { readonly kind: 'gap'; readonly to: number; readonly reason: string }
  | { readonly kind: 'replayEnd'; readonly more: boolean }
  | { readonly kind: 'origin'; readonly epochs: readonly string[] }
  | { readonly kind: 'reset'; readonly key: string; readonly from: number; readonly reason: string };

/** Points `from` .. `to` are gone from the log, for `reason` (e.g. "retention"). */
export function encodeGap(to: number, reason: string): Uint8Array {
  if (!Number.isSafeInteger(to) || to < 1) throw invalid('a gap ends at a sequence number');
  const writer = new RecordWriter();
  writer.byte(GAP);
  writer.varint(to);
  writer.bytes(reasonBytes(reason));
  return writer.finish();
}

export function encodeReplayEnd(more: boolean): Uint8Array {
  return Uint8Array.of(REPLAY_END, more ? 1 : 0);
}

/** The log's epochs, newest first (16 hex digits each). */
export function encodeOrigin(epochs: readonly string[]): Uint8Array {
  if (epochs.length === 0 || !isEpochList(epochs)) {
    throw invalid(`an origin names 1 to ${MAX_CURSOR_EPOCHS} distinct log epochs`);
  }
  const writer = new RecordWriter();
  writer.byte(ORIGIN);
  writer.byte(epochs.length);
  for (const epoch of epochs) writer.raw(Buffer.from(epoch, 'hex'));
  return writer.finish();
}

/** The stream of cursor key `key` goes on at `from`: what the consumer holds from there is not this log's. */
export function encodeReset(key: string, from: number, reason: string): Uint8Array {
  if (!KEY.test(key)) throw invalid('a reset names a stream key of 16 hex digits');
  if (!Number.isSafeInteger(from) || from < 1) throw invalid('a reset goes on at a sequence number');
  const writer = new RecordWriter();
  writer.byte(RESET);
  writer.raw(Buffer.from(key, 'hex'));
  writer.varint(from);
  writer.bytes(reasonBytes(reason));
  return writer.finish();
}

/** Throws AGENT_ERR_STREAM_RECORD or AGENT_ERR_POINT_INVALID unless `record` is one whole record. */
export function decodeStreamRecord(record: Uint8Array): StreamRecord {
  switch ((record[0] ?? 0) & KIND_MASK) {
    case GAP:
      return record[0] === RESET ? decodeReset(record) : decodeGap(record);
    case REPLAY_END: {
      if (record[0] === ORIGIN) return decodeOrigin(record);
      if (record.byteLength !== 2 || record[0] !== REPLAY_END || (record[1] ?? 2) > 1) {
        throw invalid('a replay end is two bytes: 0x06, then 0 or 1');
      }
      return { kind: 'replayEnd', more: record[1] === 1 };
    }
    default:
      return { kind: 'point', reading: decodePoint(record) };
  }
}

function decodeGap(record: Uint8Array): StreamRecord {
  if (record[0] !== GAP) throw invalid('a gap record has no flags');
  const reader = new RecordReader(record, invalid);
  reader.byte();
  const to = reader.varint();
  const reason = reader.text(MAX_REASON_BYTES);
  reader.end();
  if (to < 1) throw invalid('a gap ends at a sequence number');
  return { kind: 'gap', to, reason };
}

function decodeOrigin(record: Uint8Array): StreamRecord {
  const reader = new RecordReader(record, invalid);
  reader.byte();
  const count = reader.byte();
  if (count < 1 || count > MAX_CURSOR_EPOCHS) {
    throw invalid(`an origin names 1 to ${MAX_CURSOR_EPOCHS} log epochs`);
  }
  const epochs: string[] = [];
  for (let index = 0; index < count; index++) {
    epochs.push(Buffer.from(reader.raw(EPOCH_ID_BYTES)).toString('hex'));
  }
  reader.end();
  if (!isEpochList(epochs)) throw invalid('an origin names a log epoch twice');
  return { kind: 'origin', epochs };
}

function decodeReset(record: Uint8Array): StreamRecord {
  const reader = new RecordReader(record, invalid);
  reader.byte();
  const key = Buffer.from(reader.raw(STREAM_KEY_BYTES)).toString('hex');
  const from = reader.varint();
  const reason = reader.text(MAX_REASON_BYTES);
  reader.end();
  if (from < 1) throw invalid('a reset goes on at a sequence number');
  return { kind: 'reset', key, from, reason };
}

function reasonBytes(reason: string): Uint8Array {
  const text = new TextEncoder().encode(reason);
  if (text.byteLength > MAX_REASON_BYTES) throw invalid(`a reason is at most ${MAX_REASON_BYTES} bytes`);
  return text;
}

function invalid(detail: string, cause?: unknown): DmzError {
  return new DmzError('AGENT_ERR_STREAM_RECORD', `stream record is invalid: ${detail}`, { cause });
}

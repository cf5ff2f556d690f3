/**
 * What a replayed batch (a publish directed to one session) may hold besides points: a gap, where
 * the OT agent's log no longer has the points asked for, and the end of a replay round. Both share
 * the point encoding's first byte, with value kinds no point uses (point.ts: 0-5), so one decoder
 * tells every record of a batch apart:
 *
 *   gap         0x07, varint last sequence gone (`to`), varint length + UTF-8 reason
 *               The batch's `seq` is the first sequence gone; the batch holds this one record.
 *   replay end  0x06, one byte: 1 if the round stopped at its window with more to replay, else 0
 *               It takes no sequence number: the batch's `seq` is the stream's next one.
 */
import { DmzError } from '../../relay/protocol/errors.ts';
import { decodePoint, MAX_REASON_BYTES, type PointReading } from './point.ts';
import { RecordReader, RecordWriter } from './record-bytes.ts';

const REPLAY_END = 0x06;
const GAP = 0x07;
const KIND_MASK = 0b111;

export type StreamRecord =
  | { readonly kind: 'point'; readonly reading: PointReading }
  | { readonly kind: 'gap'; readonly to: number; readonly reason: string }
  | { readonly kind: 'replayEnd'; readonly more: boolean };

/** Points `from` .. `to` are gone from the log, for `reason` (e.g. "retention"). */
export function encodeGap(to: number, reason: string): Uint8Array {
  if (!Number.isSafeInteger(to) || to < 1) throw invalid('a gap ends at a sequence number');
  const text = new TextEncoder().encode(reason);
  if (text.byteLength > MAX_REASON_BYTES) throw invalid(`a gap reason is at most ${MAX_REASON_BYTES} bytes`);
  const writer = new RecordWriter();
  writer.byte(GAP);
  writer.varint(to);
  writer.bytes(text);
  return writer.finish();
}

export function encodeReplayEnd(more: boolean): Uint8Array {
  return Uint8Array.of(REPLAY_END, more ? 1 : 0);
}

/** Throws AGENT_ERR_STREAM_RECORD or AGENT_ERR_POINT_INVALID unless `record` is one whole record. */
export function decodeStreamRecord(record: Uint8Array): StreamRecord {
  switch ((record[0] ?? 0) & KIND_MASK) {
    case GAP: {
      if (record[0] !== GAP) throw invalid('a gap record has no flags');
      const reader = new RecordReader(record, invalid);
      reader.byte();
      const to = reader.varint();
      const reason = reader.text(MAX_REASON_BYTES);
      reader.end();
      if (to < 1) throw invalid('a gap ends at a sequence number');
      return { kind: 'gap', to, reason };
    }
    case REPLAY_END: {
      if (record.byteLength !== 2 || record[0] !== REPLAY_END || (record[1] ?? 2) > 1) {
        throw invalid('a replay end is two bytes: 0x06, then 0 or 1');
      }
      return { kind: 'replayEnd', more: record[1] === 1 };
    }
    default:
      return { kind: 'point', reading: decodePoint(record) };
  }
}

function invalid(detail: string, cause?: unknown): DmzError {
  return new DmzError('AGENT_ERR_STREAM_RECORD', `stream record is invalid: ${detail}`, { cause });
}

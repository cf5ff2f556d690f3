/**
 * What the log accepts from its caller, checked before anything is numbered or written: a refused
 * append changes nothing, on disk or in memory.
 */
import { DmzError } from '../../../relay/protocol/errors.ts';
import { validateTopic } from '../../../relay/protocol/topics.ts';
import {
  MAX_APPEND_BYTES,
  MAX_READ_RECORDS,
  MAX_RECORD_BYTES,
  MAX_RECORDS_PER_APPEND,
  MAX_SEQ,
  MAX_STREAMS,
  MAX_STREAMS_READ_RECORDS,
} from './limits.ts';
import { logError } from './log-errors.ts';

/** A stream name is a publishable topic (RELAY_ERR_INVALID_TOPIC otherwise). */
export function checkStreamName(stream: unknown): asserts stream is string {
  if (typeof stream !== 'string')
    throw new DmzError('RELAY_ERR_INVALID_TOPIC', 'a stream name is a topic string');
  validateTopic(stream);
}

export function checkRecords(records: unknown): asserts records is readonly Uint8Array[] {
  if (!Array.isArray(records) || records.length === 0 || records.length > MAX_RECORDS_PER_APPEND) {
    throw logError('append', `an append holds 1 to ${MAX_RECORDS_PER_APPEND} records`);
  }
  let bytes = 0;
  for (let index = 0; index < records.length; index++) {
    const record: unknown = records[index];
    if (!(record instanceof Uint8Array)) throw logError('record', `record ${index} is not bytes`);
    if (record.byteLength === 0) throw logError('record', `record ${index} is empty`);
    if (record.byteLength > MAX_RECORD_BYTES) {
      throw logError('record', `record ${index} is larger than ${MAX_RECORD_BYTES} bytes`);
    }
    bytes += record.byteLength;
  }
  if (bytes > MAX_APPEND_BYTES)
    throw logError('append', `an append holds at most ${MAX_APPEND_BYTES} record bytes`);
}

export function checkReadRange(fromSeq: unknown, maxRecords: unknown): void {
  checkFromSeq(fromSeq);
  checkMaxRecords(maxRecords, MAX_READ_RECORDS);
}

/** A read of many streams: each start a sequence number, at most MAX_STREAMS of them. */
export function checkStreamsRead(from: ReadonlyMap<unknown, unknown>, maxRecords: unknown): void {
  if (from.size > MAX_STREAMS) throw logError('read', `a read asks for at most ${MAX_STREAMS} streams`);
  for (const fromSeq of from.values()) checkFromSeq(fromSeq);
  checkMaxRecords(maxRecords, MAX_STREAMS_READ_RECORDS);
}

function checkFromSeq(fromSeq: unknown): void {
  if (typeof fromSeq !== 'number' || !Number.isSafeInteger(fromSeq) || fromSeq < 1 || fromSeq > MAX_SEQ) {
    throw logError('read', 'a read starts at a sequence number of 1 or more');
  }
}

function checkMaxRecords(maxRecords: unknown, limit: number): void {
  if (typeof maxRecords !== 'number' || !Number.isSafeInteger(maxRecords) || maxRecords < 1) {
    throw logError('read', 'a read asks for 1 record or more');
  }
  if (maxRecords > limit) throw logError('read', `a read returns at most ${limit} records`);
}

/**
 * Shared pieces of the publisher and replay tests: a PublishingLink that records what it is asked
 * to send and lets a test hold `whenWritable`, a log wrapper that counts reads, and point records.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import type { PublishingLink } from '../../../agents/ot/publishing-link.ts';
import { openStreamLog, type StreamLog, type StreamLogOptions } from '../../../agents/ot/log/stream-log.ts';
import { decodePointBatch, encodePointBatch } from '../../../agents/points/batch.ts';
import { encodePoint } from '../../../agents/points/point.ts';
import { decodeStreamRecord, type StreamRecord } from '../../../agents/points/stream-record.ts';
import { readingFor, readingsFor } from '../../support/points.ts';

/** A real stream log in a fresh directory; closed, then removed, when the test ends. */
export async function openTempLog(
  t: TestContext,
  options: Omit<StreamLogOptions, 'dir'>,
): Promise<StreamLog> {
  const parent = await mkdtemp(join(tmpdir(), 'dmz-publishing-'));
  const log = await openStreamLog({ dir: join(parent, 'log'), ...options });
  t.after(async () => {
    await log.close();
    await rm(parent, { recursive: true, force: true });
  });
  return log;
}

/** Logs `count` more readings of `topic`, continuing its sequence, `perAppend` (at most 4096) at a time. */
export async function logPoints(
  log: StreamLog,
  topic: string,
  count: number,
  perAppend = 4096,
): Promise<void> {
  for (let first = log.lastSeq(topic) + 1, left = count; left > 0;) {
    const size = Math.min(left, perAppend);
    await log.append(
      topic,
      readingsFor(first, size).map((reading) => encodePoint(reading)),
    );
    first += size;
    left -= size;
  }
}

/** One publish the link was asked for, its batch decoded. */
export interface Published {
  readonly topic: string;
  readonly seq: number;
  readonly session: number | undefined;
  readonly batchBytes: number;
  readonly records: readonly StreamRecord[];
}

export class RecordingLink implements PublishingLink {
  closed = false;
  bufferedBytes = 0;
  readonly welcome: { readonly maxFrameBytes: number };
  readonly published: Published[] = [];
  /** Every whenWritable call, by its bound. */
  readonly writableCalls: number[] = [];
  #held: (() => void)[] | undefined;

  constructor(maxFrameBytes = 1024 * 1024) {
    this.welcome = { maxFrameBytes };
  }

  publish(topic: string, seq: number, points: readonly Uint8Array[], session?: number): void {
    this.publishBatch(topic, seq, encodePointBatch(points), points.length, session);
  }

  publishBatch(topic: string, seq: number, batch: Uint8Array, count: number, session?: number): void {
    const records = decodePointBatch(batch, count).map((record) => decodeStreamRecord(record));
    this.published.push({ topic, seq, session, batchBytes: batch.byteLength, records });
  }

  whenWritable(maxBufferedBytes: number): Promise<void> {
    this.writableCalls.push(maxBufferedBytes);
    if (this.#held === undefined) return Promise.resolve();
    const held = this.#held;
    return new Promise((resolve) => held.push(resolve));
  }

  /** From now on whenWritable waits until release(). */
  hold(): void {
    this.#held ??= [];
  }

  release(): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    for (const resolve of held) resolve();
  }

  /** The sequence numbers of the points sent for `topic`, in the order sent. */
  pointSeqs(topic: string, session?: number): number[] {
    const seqs: number[] = [];
    for (const publish of this.published) {
      if (publish.topic !== topic || (session !== undefined && publish.session !== session)) continue;
      publish.records.forEach((record, index) => {
        if (record.kind !== 'point') return;
        // The reading says which point it is: it must sit at its own sequence number.
        if (record.reading.value !== readingFor(publish.seq + index).value) {
          throw new Error(
            `${topic} seq ${publish.seq + index} carries point ${String(record.reading.value)}`,
          );
        }
        seqs.push(publish.seq + index);
      });
    }
    return seqs;
  }

  replayEnds(): Published[] {
    return this.published.filter((publish) => publish.records.some((record) => record.kind === 'replayEnd'));
  }
}

/** `log` with some of its methods replaced, the rest passed through. */
export function wrapLog(log: StreamLog, replaced: Partial<StreamLog>): StreamLog {
  return {
    append: (stream, records) => log.append(stream, records),
    read: (stream, fromSeq, maxRecords) => log.read(stream, fromSeq, maxRecords),
    readStreams: (from, maxRecords) => log.readStreams(from, maxRecords),
    lastSeq: (stream) => log.lastSeq(stream),
    firstSeq: (stream) => log.firstSeq(stream),
    streams: () => log.streams(),
    bytesOnDisk: () => log.bytesOnDisk(),
    stats: () => log.stats(),
    enforceRetention: () => log.enforceRetention(),
    close: () => log.close(),
    ...replaced,
  };
}

/** `log` with its read calls (of one stream or many) counted: a round that starts a read is still running. */
export function countingReads(log: StreamLog): { readonly log: StreamLog; readonly reads: () => number } {
  let reads = 0;
  const read: StreamLog['read'] = (stream, fromSeq, maxRecords) => {
    reads++;
    return log.read(stream, fromSeq, maxRecords);
  };
  const readStreams: StreamLog['readStreams'] = (from, maxRecords) => {
    reads++;
    return log.readStreams(from, maxRecords);
  };
  return { log: wrapLog(log, { read, readStreams }), reads: () => reads };
}

/** One turn of the event loop: every promise continuation already due has run. */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export function range(first: number, last: number): number[] {
  return Array.from({ length: Math.max(0, last - first + 1) }, (_, index) => first + index);
}

/**
 * A RecordingLink whose queue fills with what it is asked to send and empties on drain(), which
 * wakes every whenWritable whose bound is then met at once, as the relay link's write backlog does.
 */
export class BacklogLink extends RecordingLink {
  /** The most bytes ever queued. */
  peakBytes = 0;
  #waiters: (() => void)[] = [];

  override publishBatch(
    topic: string,
    seq: number,
    batch: Uint8Array,
    count: number,
    session?: number,
  ): void {
    super.publishBatch(topic, seq, batch, count, session);
    this.bufferedBytes += batch.byteLength;
    this.peakBytes = Math.max(this.peakBytes, this.bufferedBytes);
  }

  override whenWritable(maxBufferedBytes: number): Promise<void> {
    this.writableCalls.push(maxBufferedBytes);
    if (this.closed || this.bufferedBytes <= maxBufferedBytes) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** The relay took everything queued: every waiter's bound is met. */
  drain(): void {
    this.bufferedBytes = 0;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const resolve of waiters) resolve();
  }
}

/**
 * Shared pieces of the publisher and replay tests: a PublishingLink that records what it is asked
 * to send and lets a test hold `whenWritable`, a log wrapper that counts reads, and point records.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { SendBudget } from '../../../agents/link/send-budget.ts';
import type { PublishingLink } from '../../../agents/ot/publishing-link.ts';
import { encodeFrame } from '../../../relay/protocol/codec.ts';
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

/**
 * Records what it is asked to send. Like RelayLink, every frame spends from its send budget (by
 * the bytes the relay would count) and whenWritable waits for room in it: unlimited unless the
 * test hands it a budget.
 */
export class RecordingLink implements PublishingLink {
  closed = false;
  bufferedBytes = 0;
  readonly welcome: { readonly maxFrameBytes: number };
  readonly budget: SendBudget;
  readonly published: Published[] = [];
  /** The wire size of each frame sent, as the relay counts it, and when it was sent (by `now`). */
  readonly frameBytes: number[] = [];
  readonly sentAt: number[] = [];
  readonly #now: () => number;
  /** Every whenWritable call, by its bound. */
  readonly writableCalls: number[] = [];
  #held: (() => void)[] | undefined;

  constructor(maxFrameBytes = 1024 * 1024, budget?: SendBudget, now: () => number = Date.now) {
    this.welcome = { maxFrameBytes };
    this.budget = budget ?? new SendBudget(this.welcome);
    this.#now = now;
  }

  publish(topic: string, seq: number, points: readonly Uint8Array[], session?: number): void {
    this.publishBatch(topic, seq, encodePointBatch(points), points.length, session);
  }

  publishBatch(topic: string, seq: number, batch: Uint8Array, count: number, session?: number): void {
    const records = decodePointBatch(batch, count).map((record) => decodeStreamRecord(record));
    this.published.push({ topic, seq, session, batchBytes: batch.byteLength, records });
    const frame = encodeFrame({
      type: 'publish',
      topic,
      seq,
      count,
      points: batch,
      ...(session === undefined ? {} : { session }),
    });
    this.frameBytes.push(frame.byteLength);
    this.sentAt.push(this.#now());
    this.budget.spend(frame.byteLength);
  }

  async whenWritable(maxBufferedBytes: number): Promise<void> {
    this.writableCalls.push(maxBufferedBytes);
    if (this.#held !== undefined) {
      const held = this.#held;
      await new Promise<void>((resolve) => held.push(resolve));
    }
    await this.budget.whenRoom();
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

/**
 * A RecordingLink under the rates a relay announced, its budget on a clock the test moves
 * (`advance`); the budget is released when the test ends, as a closing link releases it.
 */
export function pacedLink(
  t: TestContext,
  limits: { messagesPerSecond?: number; bytesPerSecond?: number },
): { readonly link: RecordingLink; readonly advance: (ms: number) => void } {
  let now = 0;
  const clock = () => now;
  const budget = new SendBudget({ maxFrameBytes: 1024 * 1024, limits }, clock);
  t.after(() => budget.release());
  return {
    link: new RecordingLink(1024 * 1024, budget, clock),
    advance: (ms) => {
      now += ms;
    },
  };
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
    epochs: (count) => log.epochs(count),
    agreement: (known) => log.agreement(known),
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

  override async whenWritable(maxBufferedBytes: number): Promise<void> {
    this.writableCalls.push(maxBufferedBytes);
    if (!this.closed && this.bufferedBytes > maxBufferedBytes)
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    await this.budget.whenRoom();
  }

  /** The relay took everything queued: every waiter's bound is met. */
  drain(): void {
    this.bufferedBytes = 0;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const resolve of waiters) resolve();
  }
}

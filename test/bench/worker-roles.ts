/**
 * A worker's two data-path parts. The publisher publishes one batch per message as far as the
 * coordinator's credit allows (and, paced, no faster than its rate, each message stamped with its
 * send time); the subscriber counts what arrives, checks its size, keeps latencies when asked,
 * and reports its progress, which is what the coordinator turns into the publisher's credit.
 */
import type { BenchClient } from './bench-clients.ts';
import { monotonicMs } from './clock.ts';
import { readStamp, stampBatch, type MessageShape } from './payloads.ts';
import { flowWindow } from './phase.ts';
import { PROGRESS_INTERVAL_MS, PUBLISHER_HIGH_WATER_BYTES } from './settings.ts';
import type { LatencyCapture, Pace, SubscriberReport } from './worker-protocol.ts';

/** A publisher held back by its socket looks again this soon (ws and nats.js have no drain event for us). */
const BACKPRESSURE_POLL_MS = 1;

export class PublisherRole {
  readonly #client: BenchClient;
  readonly #topic: string;
  readonly #batch: Uint8Array;
  readonly #shape: MessageShape;
  readonly #pace: Pace | undefined;
  #allowed = 0;
  #published = 0;
  #startedAt: number | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(client: BenchClient, topic: string, batch: Uint8Array, shape: MessageShape, pace?: Pace) {
    this.#client = client;
    this.#topic = topic;
    this.#batch = batch;
    this.#shape = shape;
    this.#pace = pace;
  }

  credit(allowed: number): void {
    if (allowed <= this.#allowed) return;
    this.#allowed = allowed;
    this.#startedAt ??= monotonicMs();
    this.#pump();
  }

  /** Stops publishing; the count published. */
  stop(): number {
    this.#stopped = true;
    clearTimeout(this.#timer);
    if (this.#client.closed) throw new Error('the publisher was disconnected');
    return this.#published;
  }

  #pump(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#stopped || this.#client.closed) return;
    const due = this.#due();
    while (
      this.#published < this.#allowed &&
      this.#published < due &&
      this.#client.bufferedBytes < PUBLISHER_HIGH_WATER_BYTES
    ) {
      this.#client.publish(this.#topic, this.#nextPayload(), this.#shape.pointsPerMessage);
      this.#published++;
    }
    if (this.#published >= this.#allowed) return; // the next credit wakes it
    const pace = this.#pace;
    const wait =
      pace !== undefined && this.#published >= due
        ? (this.#startedAt ?? 0) + (this.#published * 1000) / pace.messagesPerSecond - monotonicMs()
        : BACKPRESSURE_POLL_MS;
    this.#timer = setTimeout(() => this.#pump(), Math.max(0, wait));
  }

  /** Messages the pace allows by now (all of them unpaced). */
  #due(): number {
    if (this.#pace === undefined) return Number.POSITIVE_INFINITY;
    const elapsedMs = monotonicMs() - (this.#startedAt ?? monotonicMs());
    return Math.floor((elapsedMs * this.#pace.messagesPerSecond) / 1000) + 1;
  }

  #nextPayload(): Uint8Array {
    if (this.#pace === undefined) return this.#batch;
    // A copy per message: nats.js and mqtt.js may still hold the previous one unsent.
    const payload = Uint8Array.from(this.#batch);
    stampBatch(payload, this.#shape.stampOffset, monotonicMs() * 1000);
    return payload;
  }
}

export class SubscriberRole {
  readonly #shape: MessageShape;
  readonly #latency: LatencyCapture | undefined;
  readonly #report: (messages: number, lastAt: number) => void;
  readonly #samples: Float64Array | undefined;
  readonly #reportEvery: number;
  readonly #timer: NodeJS.Timeout;
  #sampleCount = 0;
  #messages = 0;
  #malformed = 0;
  #reported = 0;
  #lastAt = 0;

  constructor(
    shape: MessageShape,
    latency: LatencyCapture | undefined,
    report: (messages: number, lastAt: number) => void,
  ) {
    this.#shape = shape;
    this.#latency = latency;
    this.#report = report;
    this.#samples = latency === undefined ? undefined : new Float64Array(latency.maxSamples);
    this.#reportEvery = Math.max(1, Math.floor(flowWindow(shape) / 4));
    this.#timer = setInterval(() => {
      if (this.#messages !== this.#reported) this.#sendProgress();
    }, PROGRESS_INTERVAL_MS);
  }

  readonly onMessage = (payload: Uint8Array, count: number | undefined): void => {
    const now = monotonicMs();
    this.#lastAt = now;
    this.#messages++;
    if (
      payload.byteLength !== this.#shape.messageBytes ||
      (count !== undefined && count !== this.#shape.pointsPerMessage)
    ) {
      this.#malformed++;
    } else if (
      this.#samples !== undefined &&
      this.#messages > (this.#latency?.skipMessages ?? 0) &&
      this.#sampleCount < this.#samples.length
    ) {
      this.#samples[this.#sampleCount++] = now - readStamp(payload, this.#shape.stampOffset) / 1000;
    }
    if (this.#messages - this.#reported >= this.#reportEvery) this.#sendProgress();
  };

  stop(dropped: number): SubscriberReport {
    clearInterval(this.#timer);
    this.#sendProgress();
    return {
      messages: this.#messages,
      malformed: this.#malformed + dropped,
      ...(this.#samples === undefined ? {} : { latenciesMs: this.#samples.slice(0, this.#sampleCount) }),
    };
  }

  #sendProgress(): void {
    this.#reported = this.#messages;
    this.#report(this.#messages, this.#lastAt);
  }
}

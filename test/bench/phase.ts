/**
 * One measured phase, the same for every system: a publisher and its subscribers (each in its own
 * process), end-to-end flow control from the subscribers' progress, a warm-up, a timed part, a
 * drain, and the CPU every process spent meanwhile. Throughput phases publish as fast as the window
 * lets them; paced phases publish at a fixed rate and collect each message's latency.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { monotonicMs } from './clock.ts';
import type { MessageShape } from './payloads.ts';
import { readCpuSeconds } from './processes.ts';
import { DRAIN_TIMEOUT_MS, FLOW_WINDOW_BYTES, FLOW_WINDOW_MESSAGES } from './settings.ts';
import { summarizeLatency, type LatencyResult } from './stats.ts';
import type { SubscriberReport } from './worker-protocol.ts';

/** Progress is also checked this often, in case a report is the last one for a while. */
const CHECK_INTERVAL_MS = 20;

export interface PhasePublisher {
  readonly pid: number;
  /** It may publish up to `allowed` messages in all. */
  grant(allowed: number): void;
  /** Stops publishing; resolves with the count published. */
  stop(): Promise<number>;
  close(): Promise<void>;
}

export interface PhaseSubscriber {
  readonly pid: number;
  readonly messages: number;
  /** Monotonic time (clock.ts) of the last message. */
  readonly lastAt: number;
  onProgress: (() => void) | undefined;
  stop(): Promise<SubscriberReport>;
  close(): Promise<void>;
}

export type PhaseMode =
  { readonly kind: 'throughput' } | { readonly kind: 'paced'; readonly messagesPerSecond: number };

export interface PhaseOptions {
  readonly publisher: PhasePublisher;
  readonly subscribers: readonly PhaseSubscriber[];
  readonly shape: MessageShape;
  readonly mode: PhaseMode;
  readonly warmUpMs: number;
  readonly measureMs: number;
  readonly maxBytes: number;
  /** The server's processes (the relay, the broker). */
  readonly serverPids: readonly number[];
}

/** CPU used during the timed part, in cores (1.0 = one core busy the whole time). */
export interface CpuShare {
  readonly server: number;
  readonly publisher: number;
  /** Per subscriber process: the mean and the busiest. */
  readonly subscriberMean: number;
  readonly subscriberMax: number;
  /** The coordinator itself (it drives mosquitto's C clients through their stdio). */
  readonly bench: number;
}

export interface PhaseResult {
  readonly subscribers: number;
  /** Messages published in the timed part. */
  readonly published: number;
  /** Messages received in the timed part, summed over subscribers. */
  readonly delivered: number;
  /** published x subscribers - delivered: what had not arrived when the drain gave up. */
  readonly undelivered: number;
  readonly malformed: number;
  readonly seconds: number;
  /** Messages per second the publisher sustained (offered rate, paced). */
  readonly messagesPerSecond: number;
  /** Delivered, summed over subscribers. */
  readonly pointsPerSecond: number;
  readonly bytesPerSecond: number;
  readonly cpu: CpuShare;
  readonly latency?: LatencyResult;
}

export async function runPhase(options: PhaseOptions): Promise<PhaseResult> {
  const { publisher, subscribers, shape, mode } = options;
  const window = flowWindow(shape);
  const maxMessages = Math.max(1, Math.floor(options.maxBytes / shape.messageBytes));
  let limit = maxMessages;
  let granted = 0;
  const least = () => Math.min(...subscribers.map((subscriber) => subscriber.messages));
  let wake: () => void = () => undefined;
  const update = () => {
    const next = Math.min(limit, least() + window);
    if (next > granted) {
      granted = next;
      publisher.grant(granted);
    }
    wake();
  };
  const until = async (done: () => boolean, timeoutMs: number): Promise<boolean> => {
    const deadline = monotonicMs() + timeoutMs;
    while (!done()) {
      const left = deadline - monotonicMs();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, CHECK_INTERVAL_MS));
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return true;
  };
  for (const subscriber of subscribers) subscriber.onProgress = update;
  try {
    update();
    let base = 0;
    if (mode.kind === 'throughput') {
      await delay(options.warmUpMs);
      limit = granted;
      if (!(await until(() => least() >= granted, DRAIN_TIMEOUT_MS))) {
        throw new Error(`subscribers did not receive the warm-up within ${DRAIN_TIMEOUT_MS} ms`);
      }
      base = granted;
      limit = maxMessages;
    }
    const startedAt = monotonicMs();
    const cpuAtStart = sampleCpu(options);
    update();
    const measureMs = options.measureMs + (mode.kind === 'paced' ? options.warmUpMs : 0);
    await until(() => least() >= maxMessages, measureMs);
    const stoppedAt = monotonicMs();
    const published = await publisher.stop();
    limit = published;
    await until(() => least() >= published, DRAIN_TIMEOUT_MS);
    const cpuAtEnd = sampleCpu(options);
    const endedAt = Math.max(startedAt + 1, ...subscribers.map((subscriber) => subscriber.lastAt));
    const reports = await Promise.all(subscribers.map((subscriber) => subscriber.stop()));
    const delivered = reports.reduce((sum, report) => sum + Math.min(report.messages, published) - base, 0);
    const seconds = (endedAt - startedAt) / 1000;
    const samples = reports.flatMap((report) =>
      report.latenciesMs === undefined ? [] : [...report.latenciesMs],
    );
    return {
      subscribers: subscribers.length,
      published: published - base,
      delivered,
      undelivered: (published - base) * subscribers.length - delivered,
      malformed: reports.reduce((sum, report) => sum + report.malformed, 0),
      seconds,
      messagesPerSecond:
        (published - base) /
        (Math.max(mode.kind === 'paced' ? stoppedAt - startedAt : endedAt - startedAt, 1) / 1000),
      pointsPerSecond: (delivered * shape.pointsPerMessage) / seconds,
      bytesPerSecond: (delivered * shape.messageBytes) / seconds,
      cpu: cpuShare(cpuAtStart, cpuAtEnd),
      ...(samples.length === 0 ? {} : { latency: summarizeLatency(samples) }),
    };
  } finally {
    for (const subscriber of subscribers) subscriber.onProgress = undefined;
  }
}

/** Messages the publisher may run ahead of the slowest subscriber (settings.ts). */
export function flowWindow(shape: MessageShape): number {
  return Math.max(1, Math.min(FLOW_WINDOW_MESSAGES, Math.floor(FLOW_WINDOW_BYTES / shape.messageBytes)));
}

interface CpuSample {
  readonly at: number;
  readonly server: number;
  readonly publisher: number;
  readonly subscribers: readonly number[];
  readonly bench: number;
}

function sampleCpu(options: PhaseOptions): CpuSample {
  const read = (pid: number) => {
    try {
      return readCpuSeconds(pid);
    } catch {
      return Number.NaN; // it exited: the report shows "n/a" rather than a wrong number
    }
  };
  const self = process.cpuUsage();
  return {
    at: monotonicMs(),
    server: options.serverPids.reduce((sum, pid) => sum + read(pid), 0),
    publisher: read(options.publisher.pid),
    subscribers: options.subscribers.map((subscriber) => read(subscriber.pid)),
    bench: (self.user + self.system) / 1e6,
  };
}

function cpuShare(start: CpuSample, end: CpuSample): CpuShare {
  const seconds = Math.max(end.at - start.at, 1) / 1000;
  const perSubscriber = end.subscribers.map((value, index) => (value - start.subscribers[index]!) / seconds);
  return {
    server: (end.server - start.server) / seconds,
    publisher: (end.publisher - start.publisher) / seconds,
    subscriberMean: perSubscriber.reduce((sum, value) => sum + value, 0) / Math.max(1, perSubscriber.length),
    subscriberMax: Math.max(...perSubscriber),
    bench: (end.bench - start.bench) / seconds,
  };
}

/**
 * The relay's workloads, driven from this process against a relay in a child process: points/s
 * from one OT publisher to one IT subscriber, then to FAN_OUT_SUBSCRIBERS, and closed-loop latency
 * (publish -> deliver, one way, both clients in this process so one clock times both ends).
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { TestPki } from '../support/test-pki.ts';
import { makePayload, makePayloads } from './payloads.ts';
import {
  connectAgent,
  connectSubscriber,
  PointPublisher,
  PUBLISHER_NAME,
  type Subscriber,
} from './relay-agents.ts';
import {
  BATCH_POINTS,
  DRAIN_TIMEOUT_MS,
  FAN_OUT_SUBSCRIBERS,
  IN_FLIGHT_POINTS,
  LATENCY,
  PUBLISHER_HIGH_WATER_BYTES,
  RELAY_THROUGHPUT,
} from './settings.ts';
import {
  attempt,
  summarizeLatency,
  throughputResult,
  type LatencyResult,
  type SystemResults,
  type ThroughputResult,
} from './stats.ts';

const CLOSE_TIMEOUT_MS = 3_000;
/** ws has no drain event for us: a publisher held back by its socket looks again this often. */
const BACKPRESSURE_POLL_MS = 1;

export async function runRelayWorkloads(url: string, pki: TestPki): Promise<SystemResults> {
  const publisher = new PointPublisher(await connectAgent(url, pki, 'ot', PUBLISHER_NAME));
  const subscribers: Subscriber[] = [];
  try {
    subscribers.push(await connectSubscriber(url, pki, 'bench-it-0'));
    const oneToOne = await attempt(async () => {
      await pump(publisher, subscribers, RELAY_THROUGHPUT.warmUpPoints);
      return pump(publisher, subscribers, RELAY_THROUGHPUT.oneToOnePoints);
    });
    const latency = await attempt(() => measureLatency(publisher, subscribers[0]!));
    const fanOut = await attempt(async () => {
      const more = await Promise.all(
        Array.from({ length: FAN_OUT_SUBSCRIBERS - 1 }, (_, index) =>
          connectSubscriber(url, pki, `bench-it-${index + 1}`),
        ),
      );
      subscribers.push(...more);
      await pump(publisher, subscribers, RELAY_THROUGHPUT.warmUpPoints / FAN_OUT_SUBSCRIBERS);
      return pump(publisher, subscribers, RELAY_THROUGHPUT.fanOutPoints);
    });
    return { oneToOne, fanOut, latency };
  } finally {
    const clients = [publisher.client, ...subscribers.map((subscriber) => subscriber.client)];
    await Promise.race([Promise.all(clients.map((client) => client.close())), delay(CLOSE_TIMEOUT_MS)]);
  }
}

/**
 * Publishes `points` in frames of BATCH_POINTS as fast as backpressure allows, then waits for
 * every subscriber to have them. Two brakes keep memory bounded: the publisher's unsent bytes, and
 * the points the slowest subscriber has yet to receive (so the relay never needs to drop).
 */
async function pump(
  publisher: PointPublisher,
  subscribers: readonly Subscriber[],
  points: number,
): Promise<ThroughputResult> {
  const batch = makePayloads(BATCH_POINTS);
  const counters = subscribers.map((subscriber) => subscriber.counter);
  const base = counters.map((counter) => counter.delivered);
  const slowest = (): number => {
    let least = Infinity;
    counters.forEach((counter, index) => (least = Math.min(least, counter.delivered - base[index]!)));
    return least;
  };
  // Woken by any delivery (the window may have opened) or, for socket backpressure, by a short timer.
  let wake: () => void = () => undefined;
  for (const counter of counters) counter.onDelivery = () => wake();
  const progress = () =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, BACKPRESSURE_POLL_MS);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  const startedAt = performance.now();
  const deadline = startedAt + RELAY_THROUGHPUT.timeLimitMs;
  let published = 0;
  try {
    while (published < points && performance.now() < deadline) {
      if (publisher.client.closed) throw new Error('the relay closed the publisher connection');
      if (
        publisher.client.bufferedBytes > PUBLISHER_HIGH_WATER_BYTES ||
        published - slowest() >= IN_FLIGHT_POINTS
      ) {
        if (subscribers.some((subscriber) => subscriber.client.closed)) {
          throw new Error('the relay closed a subscriber connection');
        }
        await progress();
        continue;
      }
      publisher.publish(batch);
      published += batch.length;
    }
  } finally {
    for (const counter of counters) counter.onDelivery = undefined;
  }
  const drainDeadline = performance.now() + DRAIN_TIMEOUT_MS;
  while (slowest() < published && performance.now() < drainDeadline) {
    if (subscribers.some((subscriber) => subscriber.client.closed)) {
      throw new Error('the relay closed a subscriber connection');
    }
    await delay(1);
  }
  const delivered = counters.reduce((sum, counter, index) => sum + counter.delivered - base[index]!, 0);
  const lastDeliveryAt = Math.max(...counters.map((counter) => counter.lastDeliveryAt));
  return throughputResult(published, delivered, subscribers.length, startedAt, lastDeliveryAt);
}

/** One point in flight: publish, wait for its delivery, repeat. Times publish -> deliver. */
async function measureLatency(publisher: PointPublisher, subscriber: Subscriber): Promise<LatencyResult> {
  const point = [makePayload(0)];
  const counter = subscriber.counter;
  const samples: number[] = [];
  const deadline = performance.now() + LATENCY.timeLimitMs;
  let expectedSeq = -1;
  let arrived: () => void = () => undefined;
  counter.onDelivery = (seq) => {
    if (seq === expectedSeq) arrived();
  };
  try {
    for (let index = 0; index < LATENCY.warmUpSamples + LATENCY.samples; index++) {
      if (performance.now() > deadline) break;
      let timer: NodeJS.Timeout | undefined;
      const delivery = new Promise<void>((resolve, reject) => {
        arrived = resolve;
        timer = setTimeout(
          () => reject(new Error('a latency sample was never delivered')),
          LATENCY.sampleTimeoutMs,
        );
      });
      const sentAt = performance.now();
      expectedSeq = publisher.publish(point);
      await delivery;
      clearTimeout(timer);
      if (index >= LATENCY.warmUpSamples) samples.push(counter.lastDeliveryAt - sentAt);
    }
  } finally {
    counter.onDelivery = undefined;
  }
  return summarizeLatency(samples);
}

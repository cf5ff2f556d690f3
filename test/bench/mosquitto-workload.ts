/**
 * The same workloads through mosquitto, with its own C clients doing the MQTT work: points/s from
 * one mosquitto_pub to one mosquitto_sub and to FAN_OUT_SUBSCRIBERS of them (QoS 0, one point per
 * message), and closed-loop latency (a line into mosquitto_pub's stdin, out of mosquitto_sub's
 * stdout, then the next). That loop crosses two stdio pipes the relay's loop does not, so a `cat`
 * round trip is measured alongside as the pipes' own share.
 */
import type { ChildProcess } from 'node:child_process';
import type { Writable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import type { MqttTlsFiles } from './bench-pki.ts';
import { startMosquitto, type MosquittoBroker } from './mosquitto-broker.ts';
import {
  CountingSubscriber,
  LineReader,
  spawnLinePublisher,
  writePayloadLines,
} from './mosquitto-clients.ts';
import { makePayload } from './payloads.ts';
import { LineLog, rejectOnExit, type ChildProcessGroup } from './processes.ts';
import { FAN_OUT_SUBSCRIBERS, LATENCY, MOSQUITTO_THROUGHPUT } from './settings.ts';
import {
  attempt,
  summarizeLatency,
  throughputResult,
  type LatencyResult,
  type Outcome,
  type SystemResults,
  type ThroughputResult,
} from './stats.ts';

/** After the publisher is done, this long without output means the rest is not coming (QoS 0). */
const QUIET_MS = 1_000;
const POLL_MS = 5;

export interface MosquittoResults extends SystemResults {
  readonly version: string;
  /** The same closed loop through `cat`: what two pipe hops cost, mosquitto aside. */
  readonly pipeRoundTrip: Outcome<LatencyResult>;
}

export async function runMosquittoWorkloads(
  group: ChildProcessGroup,
  workDir: string,
  tls: MqttTlsFiles,
): Promise<MosquittoResults> {
  const broker = await startMosquitto(group, workDir, tls);
  try {
    const { oneToOnePoints, fanOutPoints } = MOSQUITTO_THROUGHPUT;
    const oneToOne = await attempt(() => measureThroughput(group, broker, 'one', 1, oneToOnePoints));
    const latency = await attempt(() => measureLatency(group, broker));
    const fanOut = await attempt(() =>
      measureThroughput(group, broker, 'fan', FAN_OUT_SUBSCRIBERS, fanOutPoints),
    );
    const pipeRoundTrip = await attempt(() => measurePipeRoundTrip(group));
    return { version: broker.version, oneToOne, fanOut, latency, pipeRoundTrip };
  } finally {
    await broker.stop();
  }
}

async function measureThroughput(
  group: ChildProcessGroup,
  broker: MosquittoBroker,
  phase: string,
  subscriberCount: number,
  points: number,
): Promise<ThroughputResult> {
  const topic = `bench/${phase}/points`;
  const subscribers = Array.from(
    { length: subscriberCount },
    (_, index) => new CountingSubscriber(group, broker, `bench-sub-${phase}-${index}`, topic, points),
  );
  const children: ChildProcess[] = subscribers.map((subscriber) => subscriber.child);
  try {
    await Promise.race([
      Promise.all(subscribers.map((subscriber) => broker.waitForSubscription(subscriber.clientId, topic))),
      ...subscribers.map((subscriber) =>
        rejectOnExit(subscriber.child, 'mosquitto_sub', () => subscriber.stderr.tail()),
      ),
    ]);
    const publisherId = `bench-pub-${phase}`;
    const publisher = spawnLinePublisher(group, broker, publisherId, topic);
    const publisherErrors = new LineLog(publisher.stderr!);
    children.push(publisher);
    await Promise.race([
      broker.waitForConnection(publisherId),
      rejectOnExit(publisher, 'mosquitto_pub', () => publisherErrors.tail()),
    ]);
    const startedAt = performance.now();
    const deadline = startedAt + MOSQUITTO_THROUGHPUT.timeLimitMs;
    const published = await writePayloadLines(publisher.stdin!, points, deadline);
    publisher.stdin!.end();
    const lastDataAt = () => Math.max(startedAt, ...subscribers.map((subscriber) => subscriber.lastDataAt));
    while (performance.now() < deadline) {
      if (subscribers.every((subscriber) => subscriber.messages >= published)) break;
      if (publisher.exitCode !== null && performance.now() - lastDataAt() > QUIET_MS) break;
      await delay(POLL_MS);
    }
    if (publisher.exitCode !== null && publisher.exitCode !== 0) {
      throw new Error(`mosquitto_pub exited with ${publisher.exitCode}: ${publisherErrors.tail()}`);
    }
    const delivered = subscribers.reduce((sum, subscriber) => sum + subscriber.messages, 0);
    if (delivered === 0) {
      throw new Error(`no message reached a subscriber: ${subscribers[0]?.stderr.tail() ?? ''}`);
    }
    return throughputResult(published, delivered, subscriberCount, startedAt, lastDataAt());
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
  }
}

async function measureLatency(group: ChildProcessGroup, broker: MosquittoBroker): Promise<LatencyResult> {
  const topic = 'bench/latency/points';
  const subscriber = group.spawn(
    'mosquitto_sub',
    [...broker.clientArgs, '-i', 'bench-lat-sub', '-t', topic],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const children = [subscriber];
  try {
    const reader = new LineReader(subscriber.stdout!);
    await Promise.race([
      broker.waitForSubscription('bench-lat-sub', topic),
      rejectOnExit(subscriber, 'mosquitto_sub'),
    ]);
    const publisher = spawnLinePublisher(group, broker, 'bench-lat-pub', topic);
    children.push(publisher);
    await Promise.race([broker.waitForConnection('bench-lat-pub'), rejectOnExit(publisher, 'mosquitto_pub')]);
    return await closedLoop(publisher.stdin!, reader);
  } finally {
    for (const child of children) child.kill('SIGTERM');
  }
}

async function measurePipeRoundTrip(group: ChildProcessGroup): Promise<LatencyResult> {
  const cat = group.spawn('cat', [], { stdio: ['pipe', 'pipe', 'ignore'] });
  try {
    return await closedLoop(cat.stdin!, new LineReader(cat.stdout!));
  } finally {
    cat.kill('SIGTERM');
  }
}

/** Writes one payload line, waits until it comes back (checking it is that one), repeats. */
async function closedLoop(input: Writable, output: LineReader): Promise<LatencyResult> {
  const samples: number[] = [];
  const deadline = performance.now() + LATENCY.timeLimitMs;
  for (let index = 0; index < LATENCY.warmUpSamples + LATENCY.samples; index++) {
    if (performance.now() > deadline) break;
    const payload = makePayload(index);
    const arriving = output.next(LATENCY.sampleTimeoutMs);
    const sentAt = performance.now();
    input.write(Buffer.concat([payload, Buffer.from('\n')]));
    const line = await arriving;
    if (line !== payload.toString('ascii')) throw new Error(`sample ${index} came back as another payload`);
    if (index >= LATENCY.warmUpSamples) samples.push(output.lastLineAt - sentAt);
  }
  return summarizeLatency(samples);
}

/**
 * The systems under test and how each one's publisher and subscribers are made for a phase: the
 * relay with the dmz agent's own client, mosquitto with its C clients and with mqtt.js, and
 * nats-server with nats.js. The Node clients run in client workers (one process each); the C
 * clients are processes of their own already. Each phase gets its own topic and client names.
 */
import type { ClientWorker } from './client-pool.ts';
import { LinePublisher, LineSubscriber, SendLog } from './mosquitto-c-clients.ts';
import type { MosquittoBroker } from './mosquitto-broker.ts';
import type { MessageShape } from './payloads.ts';
import type { PhasePublisher, PhaseSubscriber } from './phase.ts';
import type { ChildProcessGroup } from './processes.ts';
import { PUBLISHER_NAME } from './relay-agents.ts';
import type { DataPathServers, ServerName } from './servers.ts';
import type { ClientTls, Endpoint, LatencyCapture, Pace, SubscriberReport } from './worker-protocol.ts';

export const SYSTEM_NAMES = ['relay', 'mosquitto-c', 'mosquitto-js', 'nats'] as const;
export type SystemName = (typeof SYSTEM_NAMES)[number];

export const SYSTEM_LABELS: Readonly<Record<SystemName, string>> = {
  relay: 'relay (dmz agent client)',
  'mosquitto-c': 'mosquitto (C clients)',
  'mosquitto-js': 'mosquitto (mqtt.js)',
  nats: 'nats-server (nats.js)',
};

/** In table headers. */
export const SHORT_NAMES: Readonly<Record<SystemName, string>> = {
  relay: 'relay',
  'mosquitto-c': 'mosquitto C',
  'mosquitto-js': 'mosquitto mqtt.js',
  nats: 'nats',
};

export function isSystemName(value: string): value is SystemName {
  return (SYSTEM_NAMES as readonly string[]).includes(value);
}

export interface PhaseSpec {
  /** Unique in the run: it names the phase's topic and clients. */
  readonly index: number;
  readonly batch: Uint8Array;
  readonly shape: MessageShape;
  readonly subscribers: number;
  readonly pace?: Pace;
  readonly latency?: LatencyCapture;
}

export interface PhaseClients {
  readonly publisher: PhasePublisher;
  readonly subscribers: readonly PhaseSubscriber[];
}

export interface SystemUnderTest {
  readonly name: SystemName;
  readonly serverPids: readonly number[];
  /** The publisher connected and every subscriber subscribed (the relay needs its OT agent first). */
  connect(spec: PhaseSpec): Promise<PhaseClients>;
}

const SERVER_OF: Readonly<Record<SystemName, ServerName>> = {
  relay: 'relay',
  'mosquitto-c': 'mosquitto',
  'mosquitto-js': 'mosquitto',
  nats: 'nats',
};

export function systemUnderTest(
  name: SystemName,
  servers: DataPathServers,
  workers: readonly ClientWorker[],
  group: ChildProcessGroup,
): SystemUnderTest {
  const { relay, mosquitto, nats } = servers;
  const notStarted = (): SystemUnderTest => ({
    name,
    serverPids: [],
    connect: () =>
      Promise.reject(
        new Error(`${SERVER_OF[name]} did not start: ${servers.failures[SERVER_OF[name]] ?? ''}`),
      ),
  });
  switch (name) {
    case 'relay': {
      if (relay === undefined) return notStarted();
      const endpoint = (tls: ClientTls): Endpoint => ({
        kind: 'relay',
        url: relay.url,
        tls,
        publisherName: PUBLISHER_NAME,
      });
      return {
        name,
        serverPids: [relay.pid],
        connect: (spec) =>
          connectWorkers(workers, spec, `${PUBLISHER_NAME}/phase-${spec.index}/points`, {
            publisher: endpoint(servers.relayPublisherTls),
            subscriber: (index) => endpoint(servers.relaySubscriberTls[index]!),
          }),
      };
    }
    case 'mosquitto-js': {
      if (mosquitto === undefined) return notStarted();
      const endpoint: Endpoint = {
        kind: 'mqtt',
        url: `mqtts://127.0.0.1:${mosquitto.port}`,
        tls: servers.sharedTls,
      };
      return {
        name,
        serverPids: [mosquitto.pid],
        connect: (spec) =>
          connectWorkers(workers, spec, `bench/js-${spec.index}/points`, {
            publisher: endpoint,
            subscriber: () => endpoint,
          }),
      };
    }
    case 'nats': {
      if (nats === undefined) return notStarted();
      const endpoint: Endpoint = { kind: 'nats', url: nats.url, tls: servers.sharedTls };
      return {
        name,
        serverPids: [nats.pid],
        connect: (spec) =>
          connectWorkers(workers, spec, `bench.phase-${spec.index}.points`, {
            publisher: endpoint,
            subscriber: () => endpoint,
          }),
      };
    }
    case 'mosquitto-c':
      if (mosquitto === undefined) return notStarted();
      return {
        name,
        serverPids: [mosquitto.pid],
        connect: (spec) => connectCClients(group, mosquitto, servers.workDir, spec),
      };
  }
}

async function connectWorkers(
  workers: readonly ClientWorker[],
  spec: PhaseSpec,
  topic: string,
  endpoints: { readonly publisher: Endpoint; readonly subscriber: (index: number) => Endpoint },
): Promise<PhaseClients> {
  const [publisherWorker, ...subscriberWorkers] = workers;
  if (publisherWorker === undefined || subscriberWorkers.length < spec.subscribers) {
    throw new Error(`${spec.subscribers} subscribers need ${spec.subscribers + 1} client workers`);
  }
  const connected: { close(): Promise<void> }[] = [];
  try {
    await publisherWorker.request({
      op: 'publish',
      endpoint: endpoints.publisher,
      clientName: `bench-${spec.index}-pub`,
      topic,
      shape: spec.shape,
      batch: spec.batch,
      ...(spec.pace === undefined ? {} : { pace: spec.pace }),
    });
    const publisher = workerPublisher(publisherWorker);
    connected.push(publisher);
    const subscribers = await Promise.all(
      subscriberWorkers.slice(0, spec.subscribers).map(async (worker, index) => {
        const subscriber = new WorkerSubscriber(worker);
        connected.push(subscriber);
        await worker.request({
          op: 'subscribe',
          endpoint: endpoints.subscriber(index),
          clientName: `bench-${spec.index}-sub-${index}`,
          topic,
          shape: spec.shape,
          ...(spec.latency === undefined ? {} : { latency: spec.latency }),
        });
        return subscriber;
      }),
    );
    return { publisher, subscribers };
  } catch (error) {
    await Promise.all(connected.map((client) => client.close().catch(() => undefined)));
    throw error;
  }
}

function workerPublisher(worker: ClientWorker): PhasePublisher {
  return {
    pid: worker.pid,
    grant: (allowed) => worker.credit(allowed),
    stop: () => worker.request<number>({ op: 'stop' }),
    close: () => worker.request({ op: 'close' }),
  };
}

class WorkerSubscriber implements PhaseSubscriber {
  readonly #worker: ClientWorker;
  messages = 0;
  lastAt = 0;
  onProgress: (() => void) | undefined;

  constructor(worker: ClientWorker) {
    this.#worker = worker;
    worker.onProgress = (messages, lastAt) => {
      this.messages = messages;
      this.lastAt = lastAt;
      this.onProgress?.();
    };
  }

  get pid(): number {
    return this.#worker.pid;
  }

  stop(): Promise<SubscriberReport> {
    return this.#worker.request<SubscriberReport>({ op: 'stop' });
  }

  async close(): Promise<void> {
    await this.#worker.request({ op: 'close' });
    this.#worker.onProgress = undefined;
  }
}

async function connectCClients(
  group: ChildProcessGroup,
  broker: MosquittoBroker,
  outputDir: string,
  spec: PhaseSpec,
): Promise<PhaseClients> {
  const topic = `bench/c-${spec.index}/points`;
  const latency = spec.latency;
  const sendLog = latency === undefined ? undefined : new SendLog(latency.skipMessages + latency.maxSamples);
  const connected: { close(): Promise<void> }[] = [];
  try {
    const subscribers = await Promise.all(
      Array.from({ length: spec.subscribers }, async (_, index) => {
        const subscriber = await LineSubscriber.start(
          group,
          broker,
          `c-${spec.index}-sub-${index}`,
          topic,
          spec.shape,
          outputDir,
          latency === undefined || sendLog === undefined ? undefined : { ...latency, sendLog },
        );
        connected.push(subscriber);
        return subscriber;
      }),
    );
    const publisher = await LinePublisher.start(group, broker, `c-${spec.index}-pub`, topic, spec.batch, {
      ...(spec.pace === undefined ? {} : { pace: spec.pace }),
      ...(sendLog === undefined ? {} : { sendLog }),
    });
    return { publisher, subscribers };
  } catch (error) {
    await Promise.all(connected.map((client) => client.close().catch(() => undefined)));
    throw error;
  }
}

/** Closes every client of a phase, bounded by each client's own close. */
export async function closePhaseClients(clients: PhaseClients): Promise<void> {
  await Promise.all(clients.subscribers.map((subscriber) => subscriber.close().catch(() => undefined)));
  await clients.publisher.close().catch(() => undefined);
}

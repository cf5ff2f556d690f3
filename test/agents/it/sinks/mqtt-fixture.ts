/**
 * Shared pieces of the MQTT bridge tests: a bridge opened from a config section as agent.yaml has
 * it (so the section is checked as the agent checks it), and a subscriber as a historian would
 * run one: an mqtt.js client with a persistent session (clean: false) that records every message
 * it gets, with its QoS and retain flag.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import type { AedesOptions } from 'aedes';
import memoryPersistenceModule from 'aedes-persistence';
import { connectAsync, type MqttClient } from 'mqtt';
import { pino } from 'pino';
import { openMqttSink, type MqttSink } from '../../../../agents/it/sinks/mqtt-sink.ts';
import { resolveMqttSink } from '../../../../agents/it/sinks/mqtt/config.ts';
import type { ConfigIssue } from '../../../../relay/protocol/errors.ts';
import type { TestBroker } from '../../../support/mqtt-broker.ts';
import { waitFor } from '../../../support/wait.ts';

export const IT_AGENT = 'historian';

/**
 * aedes' in-memory store of sessions, subscriptions and retained messages, made here so that it
 * outlives a broker: passed as `aedes: { persistence }` to TestBroker, its restarts keep them, as
 * mosquitto's do with `persistence true`. (Its types declare an ES default export; the package is
 * CommonJS, whose default import is the factory itself.)
 */
export function sessionsThatSurviveRestarts(): unknown {
  return (memoryPersistenceModule as unknown as () => unknown)();
}

/**
 * A broker whose PUBACKs the test holds: aedes answers a PUBLISH only once authorizePublish calls
 * back, so a held callback is an unacknowledged message.
 */
export function holdingAcks(): { options: AedesOptions; held: (() => void)[]; holding: { on: boolean } } {
  const held: (() => void)[] = [];
  const holding = { on: true };
  const options: AedesOptions = {
    authorizePublish: (client, _packet, callback) => {
      if (client !== null && holding.on) held.push(() => callback(null));
      else callback(null);
    },
  };
  return { options, held, holding };
}

export function release(acks: ReturnType<typeof holdingAcks>): void {
  acks.holding.on = false;
  for (const callback of acks.held.splice(0)) callback();
}

export interface OpenedBridge {
  readonly sink: MqttSink;
  readonly stateDir: string;
  /** Whether the OT agents are online, as the consumers would say; tests change it. */
  readonly peers: Map<string, boolean>;
}

/** A bridge to `broker` with `fields` over the defaults, closed after the test. */
export async function openBridge(
  t: TestContext,
  broker: TestBroker,
  fields: Record<string, unknown> = {},
  stateDir?: string,
): Promise<OpenedBridge> {
  const parent = stateDir === undefined ? await mkdtemp(join(tmpdir(), 'dmz-bridge-')) : undefined;
  const dir = stateDir ?? join(parent as string, 'bridge');
  const issues: ConfigIssue[] = [];
  const config = resolveMqttSink(
    { type: 'mqtt', name: 'bridge', broker: { url: broker.url }, ...fields },
    '/it/sinks/0',
    (path) => path,
    issues,
  );
  if (issues.length > 0) throw new Error(`bad test config: ${JSON.stringify(issues)}`);
  const sink = await openMqttSink({
    config,
    agentName: IT_AGENT,
    stateDir: dir,
    logger: pino({ level: 'silent' }),
  });
  t.after(async () => {
    await sink.close();
    if (parent !== undefined) await rm(parent, { recursive: true, force: true });
  });
  const peers = new Map<string, boolean>();
  sink.followPeers?.(() => peers);
  return { sink, stateDir: dir, peers };
}

export async function connectedBridge(
  t: TestContext,
  broker: TestBroker,
  fields: Record<string, unknown> = {},
): Promise<OpenedBridge> {
  const bridge = await openBridge(t, broker, fields);
  await waitFor(() => bridge.sink.stats().connected, 'the bridge connected');
  return bridge;
}

export interface Received {
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos: number;
  readonly retain: boolean;
}

export class Subscriber {
  readonly messages: Received[] = [];

  private constructor(client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      this.messages.push({ topic, payload, qos: packet.qos, retain: packet.retain });
    });
  }

  /**
   * Connected and subscribed to `filter` at QoS 1. A persistent session: while the broker keeps
   * sessions (across its restarts, if its persistence survives them), nothing sent while this
   * subscriber is away is lost to it. It reconnects by itself every 100 ms.
   */
  static async connect(
    t: TestContext,
    broker: TestBroker,
    filter: string,
    clientId: string,
  ): Promise<Subscriber> {
    const client = await connectAsync(broker.url, {
      clientId,
      clean: false,
      protocolVersion: 4,
      reconnectPeriod: 100,
      // A restarting test broker answers "server unavailable" for a moment.
      reconnectOnConnackError: true,
    });
    const subscriber = new Subscriber(client);
    t.after(() => client.endAsync(true));
    await client.subscribeAsync(filter, { qos: 1 });
    return subscriber;
  }

  on(topic: string): Received[] {
    return this.messages.filter((message) => message.topic === topic);
  }

  /** Payloads on `topic`, parsed as JSON. */
  json(topic: string): Record<string, unknown>[] {
    return this.on(topic).map(
      (message) => JSON.parse(message.payload.toString('utf8')) as Record<string, unknown>,
    );
  }

  texts(topic: string): string[] {
    return this.on(topic).map((message) => message.payload.toString('utf8'));
  }
}

/**
 * What an idle agent costs a server: CPU per connection (the mTLS handshake with an RSA-2048
 * client certificate, plus each protocol's own hello: the relay's WebSocket upgrade and
 * hello/welcome, MQTT CONNECT/CONNACK, NATS INFO/CONNECT/PING), and resident memory per open
 * connection, at each step of CONNECTIONS.steps. Two fleet workers (one per core) hold the
 * connections, `concurrencyPerWorker` connecting at once each.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { ClientWorker } from './client-pool.ts';
import { monotonicMs } from './clock.ts';
import { readCpuSeconds, readRssBytes } from './processes.ts';
import type { ConnectionSettings } from './settings.ts';
import type { Endpoint, FleetStatus } from './worker-protocol.ts';

/** Extra time a worker gets to answer beyond the step's own limit. */
const ANSWER_MARGIN_MS = 15_000;

export type FleetServer = 'relay' | 'mosquitto' | 'nats';

export interface ConnectionStep {
  /** Agents connected after the step (cumulative), and how many it added. */
  readonly agents: number;
  readonly added: number;
  readonly failures: number;
  readonly connectSeconds: number;
  /** Server CPU while the step connected, per connection added. */
  readonly cpuMsPerConnection: number;
  /** Server CPU while the connections sat idle during the settle time, in cores. */
  readonly idleCpu: number;
  readonly rssBytes: number;
  /** (RSS now - RSS before the first connection) / agents. */
  readonly rssPerConnectionBytes: number;
  /** The relay's admitted handshakes during the step, `full` and `resumed` (relay only). */
  readonly handshakes?: Readonly<Record<string, number>>;
}

export interface ConnectionCost {
  readonly server: FleetServer;
  readonly baselineRssBytes: number;
  /** Every agent's first connection: full handshakes. */
  readonly steps: readonly ConnectionStep[];
  /**
   * The first step's agents closed and connected again with the TLS session tickets their first
   * connection left (relay only): the cost of a resumed handshake, from the same relay process.
   */
  readonly resumed?: ConnectionStep;
  readonly errors: readonly string[];
}

export interface FleetTarget {
  readonly server: FleetServer;
  readonly pid: number;
  readonly endpoint: Endpoint;
  readonly sourceAddresses?: readonly string[];
  /** The relay's handshake counter by session kind; given, the first step is measured resumed too. */
  readonly readHandshakes?: () => Promise<Readonly<Record<string, number>>>;
}

/** Connects the fleet step by step; leaves it connected (the caller closes it, or restarts the relay). */
export async function measureConnectionCost(
  target: FleetTarget,
  workers: readonly ClientWorker[],
  settings: ConnectionSettings,
  progress: (message: string) => void,
): Promise<ConnectionCost> {
  await delay(settings.settleMs);
  const baselineRssBytes = readRssBytes(target.pid);
  const steps: ConnectionStep[] = [];
  const errors = new Set<string>();
  let resumed: ConnectionStep | undefined;
  let connected = 0;
  const step = async (added: number): Promise<ConnectionStep> => {
    const handshakesBefore = await target.readHandshakes?.();
    const cpuBefore = readCpuSeconds(target.pid);
    const startedAt = monotonicMs();
    const statuses = await connectFleets(target, workers, added, settings);
    const connectSeconds = (monotonicMs() - startedAt) / 1000;
    const cpuAfter = readCpuSeconds(target.pid);
    const handshakesAfter = await target.readHandshakes?.();
    await delay(settings.settleMs);
    const idleCpu = (readCpuSeconds(target.pid) - cpuAfter) / (settings.settleMs / 1000);
    const now = statuses.reduce((sum, status) => sum + status.connected, 0);
    for (const status of statuses) for (const error of status.errors) errors.add(error);
    const rssBytes = readRssBytes(target.pid);
    const result: ConnectionStep = {
      agents: now,
      added: now - connected,
      failures: statuses.reduce((sum, status) => sum + status.failures, 0),
      connectSeconds,
      cpuMsPerConnection: ((cpuAfter - cpuBefore) * 1000) / Math.max(1, now - connected),
      idleCpu,
      rssBytes,
      rssPerConnectionBytes: (rssBytes - baselineRssBytes) / Math.max(1, now),
      ...(handshakesBefore === undefined || handshakesAfter === undefined
        ? {}
        : { handshakes: counterDelta(handshakesBefore, handshakesAfter) }),
    };
    connected = now;
    return result;
  };
  for (const agents of settings.steps) {
    const added = agents - connected;
    if (added <= 0) continue;
    progress(`connections: ${target.server}, ${connected} -> ${agents} agents`);
    steps.push(await step(added));
    if (steps.length === 1 && target.readHandshakes !== undefined) {
      const again = connected;
      progress(`connections: ${target.server}, the same ${again} agents again, resuming their TLS sessions`);
      await closeFleets(workers);
      connected = 0;
      await delay(settings.settleMs);
      resumed = await step(again);
    }
  }
  return {
    server: target.server,
    baselineRssBytes,
    steps,
    ...(resumed === undefined ? {} : { resumed }),
    errors: [...errors],
  };
}

function counterDelta(
  before: Readonly<Record<string, number>>,
  after: Readonly<Record<string, number>>,
): Record<string, number> {
  return Object.fromEntries(Object.entries(after).map(([key, value]) => [key, value - (before[key] ?? 0)]));
}

/** Adds `count` agents to the workers' fleets, `settings.concurrencyPerWorker` connecting at once in each. */
export function connectFleets(
  target: Pick<FleetTarget, 'endpoint' | 'sourceAddresses'>,
  workers: readonly ClientWorker[],
  count: number,
  settings: ConnectionSettings,
): Promise<FleetStatus[]> {
  return Promise.all(
    workers.map((worker, index) =>
      worker.request<FleetStatus>(
        {
          op: 'fleetConnect',
          endpoint: target.endpoint,
          count: share(count, workers.length, index),
          concurrency: settings.concurrencyPerWorker,
          timeLimitMs: settings.stepTimeLimitMs,
          ...(target.sourceAddresses === undefined ? {} : { sourceAddresses: target.sourceAddresses }),
        },
        settings.stepTimeLimitMs + ANSWER_MARGIN_MS,
      ),
    ),
  );
}

/** Worker `index`'s part of `total`, split as evenly as it goes. */
export function share(total: number, parts: number, index: number): number {
  return Math.floor(total / parts) + (index < total % parts ? 1 : 0);
}

export async function closeFleets(workers: readonly ClientWorker[]): Promise<void> {
  await Promise.all(workers.map((worker) => worker.request({ op: 'fleetClose' }, ANSWER_MARGIN_MS * 2)));
}

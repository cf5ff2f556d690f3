/**
 * A relay restart with the whole fleet connected: the relay drains (every agent gets a going-away
 * close), a new relay process starts on the same port, and every agent reconnects by itself with
 * full-jitter backoff. Measured from the relay's side: how long until its own count of agents is
 * the fleet again (/healthz), what its pre-TLS gate and TLS layer refused meanwhile, by reason
 * (dmz_relay_connections_refused_total, /metrics), how many of its handshakes resumed a TLS session
 * and how many were full ones (dmz_relay_agent_handshakes_total), and whether it is still up at the end.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { ClientWorker } from './client-pool.ts';
import { monotonicMs } from './clock.ts';
import { readCpuSeconds } from './processes.ts';
import type { RelayChild } from './relay-child.ts';
import type { StormSettings } from './settings.ts';
import type { FleetStatus } from './worker-protocol.ts';

const POLL_MS = 100;
const PROGRESS_EVERY_MS = 5_000;
const HTTP_TIMEOUT_MS = 2_000;
/** Attempts one agent may make in the storm: far above what the time limit leaves room for. */
const MAX_ATTEMPTS_PER_AGENT = 1_000;
const REFUSED_METRIC = 'dmz_relay_connections_refused_total';
const DISCONNECTS_METRIC = 'dmz_relay_disconnects_total';
export const HANDSHAKES_METRIC = 'dmz_relay_agent_handshakes_total';

/**
 * How the agents come back: `resumed`, the relay restarted as a restart leaves it (its session
 * ticket keys in the state directory) and the agents with their tickets; `full`, as before session
 * resumption: the key file removed before the new relay starts and the agents' tickets dropped,
 * so every agent makes a full handshake and offers no ticket.
 */
export type StormHandshakes = 'resumed' | 'full';

export interface StormResult {
  readonly handshakeKind: StormHandshakes;
  /** Agents the relay had before the restart. */
  readonly agents: number;
  /** From the stop request until the old relay process exited. */
  readonly stopSeconds: number;
  /** From the stop request until the new relay listened. */
  readonly restartSeconds: number;
  /** From the new relay listening until it had every agent back; undefined: not within the limit. */
  readonly backSeconds: number | undefined;
  /** Agents the new relay had when the wait ended. */
  readonly agentsAtEnd: number;
  /** The new relay's CPU from listening until the fleet was back (or the wait ended), in cores. */
  readonly relayCpu: number;
  /** The fleet workers' CPU over the same time, in cores (they stand in for the agents' own machines). */
  readonly fleetCpu: number;
  /** The new relay's refusals, by reason. */
  readonly refused: Readonly<Record<string, number>>;
  /** Agents the new relay disconnected after admitting them, by reason. */
  readonly disconnected: Readonly<Record<string, number>>;
  /** The new relay's admitted handshakes: `full` and `resumed`. */
  readonly handshakes: Readonly<Record<string, number>>;
  /** Connection attempts the fleet made during the storm, and those that failed. */
  readonly attempts: number;
  readonly failures: number;
  readonly clientErrors: readonly string[];
  /** The new relay's process is running and answers /healthz after the storm. */
  readonly relayUp: boolean;
}

export async function runReconnectStorm(
  handshakeKind: StormHandshakes,
  relay: RelayChild,
  restart: () => Promise<RelayChild>,
  workers: readonly ClientWorker[],
  settings: StormSettings,
  progress: (message: string) => void,
): Promise<{ readonly result: StormResult; readonly relay: RelayChild }> {
  const agents = (await readHealth(relay.adminPort))?.agents ?? 0;
  const before = await fleetTotals(workers);
  const untilMonotonicMs = monotonicMs() + settings.timeLimitMs + settings.backoffCapMs;
  await Promise.all(
    workers.map((worker) =>
      worker.request({
        op: 'fleetReconnect',
        policy: {
          baseMs: settings.backoffBaseMs,
          capMs: settings.backoffCapMs,
          connectTimeoutMs: settings.connectTimeoutMs,
          untilMonotonicMs,
          maxAttemptsPerAgent: MAX_ATTEMPTS_PER_AGENT,
        },
      }),
    ),
  );
  progress(`storm: restarting the relay with ${agents} agents connected, ${handshakeKind} handshakes`);
  const stopAt = monotonicMs();
  await relay.stop();
  const stoppedAt = monotonicMs();
  const next = await restart();
  const upAt = monotonicMs();
  const cpuAtUp = readCpuSeconds(next.pid);
  const fleetCpu = () => workers.reduce((sum, worker) => sum + readCpuSeconds(worker.pid), 0);
  const fleetCpuAtUp = fleetCpu();
  let backAt: number | undefined;
  let agentsAtEnd = 0;
  let reportedAt = upAt;
  while (monotonicMs() - upAt < settings.timeLimitMs) {
    agentsAtEnd = (await readHealth(next.adminPort))?.agents ?? agentsAtEnd;
    if (agentsAtEnd >= agents) {
      backAt = monotonicMs();
      break;
    }
    if (monotonicMs() - reportedAt >= PROGRESS_EVERY_MS) {
      reportedAt = monotonicMs();
      const seconds = (reportedAt - upAt) / 1000;
      const busy = (readCpuSeconds(next.pid) - cpuAtUp) / seconds;
      // Progress only: a worker too busy reconnecting its agents to answer in time fails nothing.
      const fleet = await fleetTotals(workers).catch(() => undefined);
      progress(
        `storm: ${agentsAtEnd} agents back after ${seconds.toFixed(0)} s (CPU: relay ${busy.toFixed(2)}, ` +
          `fleet ${((fleetCpu() - fleetCpuAtUp) / seconds).toFixed(2)}; the fleet counts ${fleet?.connected ?? '?'} connected)`,
      );
    }
    await delay(POLL_MS);
  }
  const relayCpuSeconds = readCpuSeconds(next.pid) - cpuAtUp;
  const fleetCpuSeconds = fleetCpu() - fleetCpuAtUp;
  const waitedSeconds = (monotonicMs() - upAt) / 1000;
  progress(`storm: ${agentsAtEnd} of ${agents} agents back`);
  const after = await fleetTotals(workers);
  const health = await readHealth(next.adminPort);
  return {
    relay: next,
    result: {
      handshakeKind,
      agents,
      stopSeconds: (stoppedAt - stopAt) / 1000,
      restartSeconds: (upAt - stopAt) / 1000,
      backSeconds: backAt === undefined ? undefined : (backAt - upAt) / 1000,
      agentsAtEnd,
      refused: await readCounter(next.adminPort, REFUSED_METRIC),
      disconnected: await readCounter(next.adminPort, DISCONNECTS_METRIC),
      handshakes: await readCounter(next.adminPort, HANDSHAKES_METRIC, 'session'),
      relayCpu: relayCpuSeconds / waitedSeconds,
      fleetCpu: fleetCpuSeconds / waitedSeconds,
      attempts: after.attempts - before.attempts,
      failures: after.failures - before.failures,
      clientErrors: after.errors,
      relayUp: !next.exited && health !== undefined,
    },
  };
}

async function fleetTotals(workers: readonly ClientWorker[]): Promise<FleetStatus> {
  const statuses = await Promise.all(
    workers.map((worker) => worker.request<FleetStatus>({ op: 'fleetStatus' })),
  );
  return {
    connected: statuses.reduce((sum, status) => sum + status.connected, 0),
    attempts: statuses.reduce((sum, status) => sum + status.attempts, 0),
    failures: statuses.reduce((sum, status) => sum + status.failures, 0),
    errors: [...new Set(statuses.flatMap((status) => status.errors))],
  };
}

/** The relay's /healthz, or undefined when it does not answer in time. */
export async function readHealth(adminPort: number): Promise<{ agents: number } | undefined> {
  try {
    const response = await fetch(`http://127.0.0.1:${adminPort}/healthz`, {
      signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
    });
    return response.ok ? ((await response.json()) as { agents: number }) : undefined;
  } catch {
    return undefined;
  }
}

/** A counter labelled by `label` (dmz_relay_connections_refused_total by reason, ...), as /metrics reports it. */
export async function readCounter(
  adminPort: number,
  metric: string,
  label = 'reason',
): Promise<Record<string, number>> {
  const response = await fetch(`http://127.0.0.1:${adminPort}/metrics`, {
    signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
  });
  const text = await response.text();
  const counts: Record<string, number> = {};
  const series = new RegExp(`^${metric}\\{${label}="([A-Za-z_]+)"\\} (\\d+(?:\\.\\d+)?)$`, 'gm');
  for (const match of text.matchAll(series)) counts[match[1]!] = Number(match[2]);
  return counts;
}

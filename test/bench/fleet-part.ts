/**
 * The connection and restart parts: each server in turn gets the same fleet of idle clients
 * (mosquitto and nats-server first, each then stopped; the relay last), and the relay, with its
 * fleet still connected, is restarted for the storm, twice: as a restart leaves its session
 * ticket keys (agents resume their TLS sessions), then as before session resumption (keys removed,
 * agents' tickets dropped: every agent makes a full handshake), both from the whole fleet and in
 * the same run. The relay's fleet agents each have
 * their own certificate, signed in the fleet workers (two cores' worth of signing instead of one).
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { BenchPki } from './bench-pki.ts';
import type { ClientWorker } from './client-pool.ts';
import {
  closeFleets,
  connectFleets,
  measureConnectionCost,
  share,
  type ConnectionCost,
} from './connection-cost.ts';
import { startMosquitto } from './mosquitto-broker.ts';
import { startNatsServer } from './nats-server.ts';
import { findFreePort, type ChildProcessGroup } from './processes.ts';
import { TICKET_KEY_FILE } from '../../relay/server/session-tickets.ts';
import {
  HANDSHAKES_METRIC,
  readCounter,
  readHealth,
  runReconnectStorm,
  type StormHandshakes,
  type StormResult,
} from './reconnect-storm.ts';
import { FLEET_LIMITS, startRelayChild, type RelayChild, type RelayChildOptions } from './relay-child.ts';
import type { ConnectionSettings, StormSettings } from './settings.ts';
import { loopbackSourceAddresses } from './fleet-tls.ts';
import { attempt, type Outcome } from './stats.ts';

/** Fleet agents per source address stay under the relay's 64 handshakes per address. */
const AGENTS_PER_SOURCE_ADDRESS = 40;
/** Signing a few thousand certificates takes seconds per thousand on this machine. */
const ISSUE_TIMEOUT_MS = 120_000;

export interface FleetPartOptions {
  readonly connections: ConnectionSettings;
  readonly storm: StormSettings;
  /** Measure mosquitto and nats-server too (the `connections` part), not just the relay. */
  readonly references: boolean;
  readonly runStorm: boolean;
  readonly relayCpuProfileDir: string | undefined;
}

export interface FleetPartResults {
  readonly connections: Outcome<ConnectionCost>[];
  /** Resumed handshakes first, then full ones (as before resumption); empty when not run. */
  readonly storms: readonly Outcome<StormResult>[];
}

/** The storms, in order: resumed first (the agents hold tickets from their first connection), then full. */
const STORMS: readonly StormHandshakes[] = ['resumed', 'full'];

export async function runFleetPart(
  group: ChildProcessGroup,
  workDir: string,
  bench: BenchPki,
  workers: readonly ClientWorker[],
  options: FleetPartOptions,
  progress: (message: string) => void,
): Promise<FleetPartResults> {
  const settings = options.connections;
  const agents = settings.steps.at(-1) ?? 0;
  const connections: Outcome<ConnectionCost>[] = [];
  const sourceAddresses = loopbackSourceAddresses(Math.ceil(agents / AGENTS_PER_SOURCE_ADDRESS));
  if (options.references) {
    connections.push(
      await attempt(async () => {
        const broker = await startMosquitto(group, workDir, bench.mqtt, { quiet: true });
        try {
          const endpoint = {
            kind: 'mqtt',
            url: `mqtts://127.0.0.1:${broker.port}`,
            tls: bench.clientTls,
          } as const;
          return await measureConnectionCost(
            { server: 'mosquitto', pid: broker.pid, endpoint },
            workers,
            settings,
            progress,
          );
        } finally {
          await closeFleets(workers);
          await broker.stop();
        }
      }),
    );
    connections.push(
      await attempt(async () => {
        const server = await startNatsServer(group, workDir, bench.mqtt);
        try {
          const endpoint = { kind: 'nats', url: server.url, tls: bench.clientTls } as const;
          return await measureConnectionCost(
            { server: 'nats', pid: server.pid, endpoint },
            workers,
            settings,
            progress,
          );
        } finally {
          await closeFleets(workers);
          await server.stop();
        }
      }),
    );
  }
  progress(`connections: signing ${agents} agent certificates in ${workers.length} workers`);
  const issued = await attempt(() => issueFleetCertificates(bench, workers, agents));
  if (!issued.ok) {
    connections.push(issued);
    return { connections, storms: options.runStorm ? [issued] : [] };
  }
  const relayOptions: RelayChildOptions = {
    workDir,
    stateDir: bench.relayStateDir,
    trustDomain: bench.pki.trustDomain,
    cpuProfileDir: options.relayCpuProfileDir,
    name: 'relay-fleet',
    port: await findFreePort(),
    limits: FLEET_LIMITS,
  };
  let relay: RelayChild | undefined;
  try {
    relay = await startRelayChild(group, relayOptions);
    const started = relay;
    const cost = await attempt(() =>
      measureConnectionCost(
        {
          server: 'relay',
          pid: started.pid,
          // The fleet workers use the certificates they signed; this one is never presented.
          endpoint: { kind: 'relay', url: started.url, tls: bench.clientTls, publisherName: 'none' },
          sourceAddresses,
          readHandshakes: () => readCounter(started.adminPort, HANDSHAKES_METRIC, 'session'),
        },
        workers,
        settings,
        progress,
      ),
    );
    connections.push(cost);
    const storms: Outcome<StormResult>[] = [];
    const fleetSize = cost.ok ? (cost.value.steps.at(-1)?.agents ?? 0) : 0;
    for (const handshakeKind of options.runStorm ? STORMS : []) {
      const current = relay;
      // Every storm starts from the same fleet: agents a storm left out are connected again first
      // (to the relay that now has the tickets' keys: they resume, and keep their tickets).
      const back = (await readHealth(current.adminPort))?.agents ?? 0;
      if (storms.length > 0 && back < fleetSize) {
        progress(`storm: ${back} of ${fleetSize} agents connected; connecting the fleet again first`);
        await closeFleets(workers);
        const endpoint = {
          kind: 'relay',
          url: current.url,
          tls: bench.clientTls,
          publisherName: 'none',
        } as const;
        await connectFleets({ endpoint, sourceAddresses }, workers, fleetSize, settings);
      }
      const storm = await attempt(async () => {
        if (handshakeKind === 'full') {
          await Promise.all(workers.map((worker) => worker.request({ op: 'fleetForgetTlsSessions' })));
        }
        const outcome = await runReconnectStorm(
          handshakeKind,
          current,
          async () => {
            // The old relay has exited: nothing writes the file while it is removed.
            if (handshakeKind === 'full')
              await rm(join(bench.relayStateDir, TICKET_KEY_FILE), { force: true });
            return startRelayChild(group, relayOptions);
          },
          workers,
          options.storm,
          progress,
        );
        relay = outcome.relay;
        return outcome.result;
      });
      storms.push(storm);
      // A storm that failed to run leaves no relay to restart; one that left agents out is
      // reported with the agents it had, and the next storm starts from those.
      if (!storm.ok) break;
    }
    return { connections, storms };
  } finally {
    await closeFleets(workers).catch(() => undefined);
    await relay?.stop();
  }
}

async function issueFleetCertificates(
  bench: BenchPki,
  workers: readonly ClientWorker[],
  agents: number,
): Promise<void> {
  await Promise.all(
    workers.map((worker, index) =>
      worker.request(
        {
          op: 'fleetIssue',
          ca: bench.pki.ca,
          agentKeyPem: bench.clientTls.keyPem,
          trustDomain: bench.pki.trustDomain,
          names: Array.from(
            { length: share(agents, workers.length, index) },
            (_, agent) => `fleet-${index}-${agent}`,
          ),
        },
        ISSUE_TIMEOUT_MS,
      ),
    ),
  );
}

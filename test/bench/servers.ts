/**
 * The servers of the data-path phases, started once for the fair matrix and the latency phases:
 * the relay (in a child process of its own, benchmark limits), mosquitto and nats-server, all on
 * loopback with the run's CA and server certificate. A server that cannot start fails only its
 * own system's phases.
 */
import type { BenchPki } from './bench-pki.ts';
import { startMosquitto, type MosquittoBroker } from './mosquitto-broker.ts';
import { startNatsServer, type NatsServer } from './nats-server.ts';
import type { ChildProcessGroup } from './processes.ts';
import { PUBLISHER_NAME } from './relay-agents.ts';
import { startRelayChild, type RelayChild } from './relay-child.ts';
import { FAN_OUT_SUBSCRIBERS } from './settings.ts';
import { attempt } from './stats.ts';
import type { ClientTls } from './worker-protocol.ts';

export type ServerName = 'relay' | 'mosquitto' | 'nats';

export interface DataPathServers {
  /** A directory for the phases' scratch files (mosquitto_sub's output). */
  readonly workDir: string;
  readonly relay: RelayChild | undefined;
  readonly mosquitto: MosquittoBroker | undefined;
  readonly nats: NatsServer | undefined;
  /** Why a server did not start, by server. */
  readonly failures: Readonly<Partial<Record<ServerName, string>>>;
  /** The relay's OT publisher and its IT subscribers, each with an identity of its own. */
  readonly relayPublisherTls: ClientTls;
  readonly relaySubscriberTls: readonly ClientTls[];
  /** One client certificate for every MQTT and NATS client: those servers check the chain only. */
  readonly sharedTls: ClientTls;
  stop(): Promise<void>;
}

export async function startDataPathServers(
  group: ChildProcessGroup,
  workDir: string,
  bench: BenchPki,
  cpuProfileDir: string | undefined,
): Promise<DataPathServers> {
  const { pki } = bench;
  const credentials = async (role: 'ot' | 'it', name: string): Promise<ClientTls> => {
    const issued = await pki.issueAgent(role, name);
    return { caPem: pki.ca.certPem, certPem: issued.certPem, keyPem: issued.keyPem };
  };
  const relayPublisherTls = await credentials('ot', PUBLISHER_NAME);
  const relaySubscriberTls = await Promise.all(
    Array.from({ length: FAN_OUT_SUBSCRIBERS }, (_, index) => credentials('it', `bench-it-${index}`)),
  );
  const relay = await attempt(() =>
    startRelayChild(group, {
      workDir,
      stateDir: bench.relayStateDir,
      trustDomain: pki.trustDomain,
      cpuProfileDir,
    }),
  );
  const mosquitto = await attempt(() => startMosquitto(group, workDir, bench.mqtt));
  const nats = await attempt(() => startNatsServer(group, workDir, bench.mqtt));
  const failures: Partial<Record<ServerName, string>> = {};
  if (!relay.ok) failures.relay = relay.error;
  if (!mosquitto.ok) failures.mosquitto = mosquitto.error;
  if (!nats.ok) failures.nats = nats.error;
  const started = {
    relay: relay.ok ? relay.value : undefined,
    mosquitto: mosquitto.ok ? mosquitto.value : undefined,
    nats: nats.ok ? nats.value : undefined,
  };
  return {
    workDir,
    ...started,
    failures,
    relayPublisherTls,
    relaySubscriberTls,
    sharedTls: bench.clientTls,
    async stop() {
      await Promise.all([started.relay?.stop(), started.mosquitto?.stop(), started.nats?.stop()]);
    },
  };
}

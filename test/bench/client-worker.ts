/**
 * A client worker: a Node process of its own that the coordinator (run.ts) drives over IPC, so
 * that no client process is shared by a publisher and its subscribers, or by ten subscribers.
 * Usage (by client-pool.ts only): `node --import tsx test/bench/client-worker.ts`, with an IPC
 * channel (advanced serialization). It exits when the channel closes: a coordinator that dies
 * cannot leave it running.
 */
import { connectBenchClient, forgetRelayTlsSessions, type BenchClient } from './bench-clients.ts';
import { STARTUP_TIMEOUT_MS } from './settings.ts';
import { installFleetTls } from './fleet-tls.ts';
import { Fleet } from './worker-fleet.ts';
import type { FromWorker, ToWorker } from './worker-protocol.ts';
import { PublisherRole, SubscriberRole } from './worker-roles.ts';

let client: BenchClient | undefined;
let publisher: PublisherRole | undefined;
let subscriber: SubscriberRole | undefined;
const fleet = new Fleet();

function send(message: FromWorker): void {
  process.send?.(message);
}

async function handle(message: ToWorker): Promise<unknown> {
  switch (message.op) {
    case 'publish': {
      await closeClient();
      client = await connectBenchClient(message.endpoint, message.clientName, {
        connectTimeoutMs: STARTUP_TIMEOUT_MS,
      });
      publisher = new PublisherRole(client, message.topic, message.batch, message.shape, message.pace);
      return null;
    }
    case 'subscribe': {
      await closeClient();
      const role = new SubscriberRole(message.shape, message.latency, (messages, lastAt) =>
        send({ op: 'progress', messages, lastAt }),
      );
      subscriber = role;
      client = await connectBenchClient(message.endpoint, message.clientName, {
        connectTimeoutMs: STARTUP_TIMEOUT_MS,
      });
      await client.subscribe(message.topic, role.onMessage);
      return null;
    }
    case 'credit':
      publisher?.credit(message.allowed);
      return undefined;
    case 'stop':
      if (publisher !== undefined) return publisher.stop();
      if (subscriber !== undefined) return subscriber.stop(client?.dropped ?? 0);
      throw new Error('nothing to stop');
    case 'close':
      await closeClient();
      return null;
    case 'fleetIssue':
      return fleet.issue(message.ca, message.agentKeyPem, message.trustDomain, message.names);
    case 'fleetConnect':
      installFleetTls(Number(new URL(message.endpoint.url).port), message.sourceAddresses ?? []);
      return fleet.connect(message.endpoint, message.count, message.concurrency, message.timeLimitMs);
    case 'fleetReconnect':
      fleet.reconnect(message.policy);
      return null;
    case 'fleetStatus':
      return fleet.status();
    case 'fleetClose':
      await fleet.close();
      return null;
    case 'fleetForgetTlsSessions':
      forgetRelayTlsSessions();
      return null;
  }
}

async function closeClient(): Promise<void> {
  try {
    publisher?.stop();
  } catch {
    // Disconnected already: closing is what was asked.
  }
  publisher = undefined;
  subscriber?.stop(0);
  subscriber = undefined;
  const closing = client;
  client = undefined;
  await closing?.close();
}

process.on('message', (message: ToWorker) => {
  if (message.op === 'credit') {
    publisher?.credit(message.allowed);
    return;
  }
  handle(message).then(
    (value) => send({ op: 'reply', id: message.id, ok: true, value }),
    (error: unknown) =>
      send({
        op: 'reply',
        id: message.id,
        ok: false,
        error: error instanceof Error ? error.message : String(error),
      }),
  );
});
process.once('disconnect', () => process.exit(0));
send({ op: 'ready' });

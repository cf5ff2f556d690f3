/**
 * The relay under benchmark, in a process of its own so that it has an event loop (and a core) to
 * itself. Usage: `node --import tsx test/bench/relay-process.ts <relay.yaml>`.
 *
 * It loads the configuration file with the production loader and hands startRelay the TLS material
 * from the state directory (CA, server certificate, CRL) without the CA's enrollment and renewal
 * machinery, which the data path does not touch; its session ticket keys are kept in the state
 * directory as a relay on its own CA keeps them (relay/server/session-tickets.ts, derived from the
 * CA key), so agents resume across its restarts as they would in production. It prints one JSON line `{"agentPort": N, ...}` on
 * stdout when it listens, and stops on SIGTERM, SIGINT or when its stdin closes (so a parent that
 * dies cannot leave it running).
 */
import { readFile } from 'node:fs/promises';
import { pino } from 'pino';
import { statePath, type StateFile } from '../../pki/state-layout.ts';
import { loadRelayConfig } from '../../relay/server/config.ts';
import { startRelay } from '../../relay/server/relay.ts';
import { SessionTicketKeys } from '../../relay/server/session-tickets.ts';

export interface RelayProcessReady {
  readonly agentPort: number;
  /** Prometheus metrics (/metrics) and /healthz, on loopback. */
  readonly adminPort: number;
}

async function main(configPath: string): Promise<void> {
  const config = await loadRelayConfig(configPath);
  const read = (file: StateFile) => readFile(statePath(config.state, file), 'utf8');
  const [caPem, certPem, keyPem, crlPem, caKeyPem] = await Promise.all([
    read('caCertificate'),
    read('relayCertificate'),
    read('relayKey'),
    read('crl'),
    read('caKey'),
  ]);
  const log = pino({ level: 'silent' });
  const ticketKeys = await SessionTicketKeys.open({
    stateDir: config.state,
    caKeyPem,
    revokedSerials: new Set(),
    log,
  });
  const relay = await startRelay({ config, tls: { caPem, certPem, keyPem, crlPem }, ticketKeys, log });
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    // A clean exit lets `--cpu-prof` write its profile.
    relay.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  process.stdin.once('end', stop);
  process.stdin.once('close', stop);
  process.stdin.resume();
  const ready: RelayProcessReady = { agentPort: relay.agentPort, adminPort: relay.adminPort };
  process.stdout.write(`${JSON.stringify(ready)}\n`);
}

const configPath = process.argv[2];
if (configPath === undefined) {
  process.stderr.write('usage: relay-process.ts <relay.yaml>\n');
  process.exit(2);
}
main(configPath).catch((error: unknown) => {
  process.stderr.write(`relay failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});

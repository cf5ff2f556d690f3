/**
 * The throwaway PKI of one benchmark run, written to disk: the relay reads its state directory the
 * way it does in production, and mosquitto and its clients read PEM files. Relay and mosquitto use
 * the same CA, server certificate (SANs localhost, 127.0.0.1, ::1) and RSA-2048 keys.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { statePath } from '../../pki/state-layout.ts';
import { createTestPki, type TestPki } from '../support/test-pki.ts';

export interface MqttTlsFiles {
  readonly caFile: string;
  readonly serverCertFile: string;
  readonly serverKeyFile: string;
  /** One client certificate for every mosquitto client: the broker checks the chain, not the name. */
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
}

export interface BenchPki {
  readonly pki: TestPki;
  /** The MQTT client certificate and key (also in `mqtt`'s files), for the Node MQTT and NATS clients. */
  readonly clientTls: { readonly caPem: string; readonly certPem: string; readonly keyPem: string };
  /** The relay's state directory, laid out as `dmz-pki init` leaves it (CA and its key, relay cert, CRL). */
  readonly relayStateDir: string;
  readonly mqtt: MqttTlsFiles;
}

const PRIVATE_FILE_MODE = 0o600;

export async function writeBenchPki(dir: string): Promise<BenchPki> {
  const pki = await createTestPki();
  const relayStateDir = join(dir, 'relay-state');
  const mqttDir = join(dir, 'mqtt-tls');
  await Promise.all([mkdir(relayStateDir, { mode: 0o700 }), mkdir(mqttDir, { mode: 0o700 })]);
  const client = await pki.issueAgent('ot', 'mqtt-bench-client');
  const mqtt: MqttTlsFiles = {
    caFile: join(mqttDir, 'ca.pem'),
    serverCertFile: join(mqttDir, 'server.pem'),
    serverKeyFile: join(mqttDir, 'server-key.pem'),
    clientCertFile: join(mqttDir, 'client.pem'),
    clientKeyFile: join(mqttDir, 'client-key.pem'),
  };
  await Promise.all([
    writeFile(statePath(relayStateDir, 'caCertificate'), pki.ca.certPem),
    // The relay derives its session ticket keys from it (relay/server/session-tickets.ts).
    writeFile(statePath(relayStateDir, 'caKey'), pki.ca.keyPem, { mode: PRIVATE_FILE_MODE }),
    writeFile(statePath(relayStateDir, 'relayCertificate'), pki.relay.certPem),
    writeFile(statePath(relayStateDir, 'relayKey'), pki.relay.keyPem, { mode: PRIVATE_FILE_MODE }),
    writeFile(statePath(relayStateDir, 'crl'), pki.crlPem),
    writeFile(mqtt.caFile, pki.ca.certPem),
    writeFile(mqtt.serverCertFile, pki.relay.certPem),
    writeFile(mqtt.serverKeyFile, pki.relay.keyPem, { mode: PRIVATE_FILE_MODE }),
    writeFile(mqtt.clientCertFile, client.certPem),
    writeFile(mqtt.clientKeyFile, client.keyPem, { mode: PRIVATE_FILE_MODE }),
  ]);
  const clientTls = { caPem: pki.ca.certPem, certPem: client.certPem, keyPem: client.keyPem };
  return { pki, clientTls, relayStateDir, mqtt };
}

/**
 * The socket of one connection attempt to a broker, opened here rather than by mqtt.js: so that
 * both TCP and TLS connections can leave from a chosen local address (mqtt.js passes
 * `localAddress` to TLS connections only), and so that TLS is verified against the configured CA
 * with no option to turn the check off. The credential files are read again for each attempt.
 */
import { readFile } from 'node:fs/promises';
import { connect as connectTcp, isIP, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { fileError } from '../../relay/protocol/command-line.ts';
import type { ConfigIssue } from '../../relay/protocol/errors.ts';
import { BROKER_FILE_KEYS, type MqttBrokerConfig } from './broker-config.ts';
import type { BrokerSettings } from './broker-settings.ts';

/** Brokers on plant networks are often older: TLS 1.2 is the least offered, never anything below. */
export const MIN_BROKER_TLS_VERSION = 'TLSv1.2';
/** A CA bundle, a certificate, a key or a password file: large for any of them, small for memory. */
export const MAX_CREDENTIAL_FILE_BYTES = 1024 * 1024;

export interface Credentials {
  readonly password: string | undefined;
  readonly ca: Buffer | undefined;
  readonly cert: Buffer | undefined;
  readonly key: Buffer | undefined;
}

/** TCP, or TLS verified against the configured CA, from the configured local address. */
export function openBrokerSocket(settings: BrokerSettings, credentials: Credentials): Socket {
  const { address, localAddress } = settings;
  const local = localAddress === undefined ? {} : { localAddress };
  if (address.protocol === 'mqtt') return connectTcp({ host: address.host, port: address.port, ...local });
  return connectTls({
    host: address.host,
    port: address.port,
    // SNI and the name checked against the certificate; an IP address is checked as one.
    ...(isIP(address.host) === 0 ? { servername: address.host } : {}),
    ...local,
    minVersion: MIN_BROKER_TLS_VERSION,
    rejectUnauthorized: true,
    ...(credentials.ca === undefined ? {} : { ca: credentials.ca }),
    ...(credentials.cert === undefined ? {} : { cert: credentials.cert }),
    ...(credentials.key === undefined ? {} : { key: credentials.key }),
  });
}

/** The credential files, read again for each attempt: a renewed certificate or password applies. */
export async function readCredentials(settings: BrokerSettings): Promise<Credentials> {
  const [password, ca, cert, key] = await Promise.all([
    settings.passwordFile === undefined ? undefined : readCredentialFile(settings.passwordFile),
    settings.caFile === undefined ? undefined : readCredentialFile(settings.caFile),
    settings.certFile === undefined ? undefined : readCredentialFile(settings.certFile),
    settings.keyFile === undefined ? undefined : readCredentialFile(settings.keyFile),
  ]);
  return {
    // One trailing newline is the editor's, not the password's.
    password: password?.toString('utf8').replace(/\r?\n$/, ''),
    ca,
    cert,
    key,
  };
}

/**
 * Reads each file a broker section names once: the problems, by key path under `at`. The agent
 * does so at start (agents/runtime/broker-files.ts), so that a missing file stops it before it
 * connects anywhere; every attempt reads them again, and one gone later is reported and retried.
 */
export async function checkCredentialFiles(broker: MqttBrokerConfig, at: string): Promise<ConfigIssue[]> {
  const issues: ConfigIssue[] = [];
  for (const key of BROKER_FILE_KEYS) {
    const path = broker[key];
    if (path === undefined) continue;
    try {
      await readCredentialFile(path);
    } catch (error) {
      const message = error instanceof RangeError ? error.message : fileError('read', path, error).message;
      issues.push({ path: `${at}/${key}`, message });
    }
  }
  return issues;
}

async function readCredentialFile(path: string): Promise<Buffer> {
  const bytes = await readFile(path);
  if (bytes.byteLength > MAX_CREDENTIAL_FILE_BYTES) {
    throw new RangeError(`${path} is larger than ${MAX_CREDENTIAL_FILE_BYTES} bytes`);
  }
  return bytes;
}

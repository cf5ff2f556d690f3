/**
 * The agent listener's TLS settings, built in one place so that the first start and every reload
 * pass the full option set: `setSecureContext` resets anything left out, and a reload without the
 * CRL would silently re-admit revoked agents.
 */
import { readFile } from 'node:fs/promises';
import type { SecureContextOptions } from 'node:tls';
import { DmzError } from '../protocol/errors.ts';
import { KEY_EXCHANGE_GROUPS, MIN_TLS_VERSION } from '../protocol/limits.ts';
import { readRelayCertificate } from '../../pki/relay-certificate.ts';
import { statePath, type StateFile } from '../../pki/state-layout.ts';
import { TICKET_LIFETIME_SECONDS } from './session-tickets.ts';

export interface RelayTlsMaterial {
  readonly caPem: string;
  readonly certPem: string;
  readonly keyPem: string;
  readonly crlPem: string;
}

export async function loadTlsMaterial(stateDir: string): Promise<RelayTlsMaterial> {
  try {
    const read = (file: StateFile) => readFile(statePath(stateDir, file), 'utf8');
    const [caPem, { certPem, keyPem }, crlPem] = await Promise.all([
      read('caCertificate'),
      readRelayCertificate(stateDir),
      read('crl'),
    ]);
    return { caPem, certPem, keyPem, crlPem };
  } catch (cause) {
    // A certificate that does not match its key says so itself (an interrupted `dmz-pki relay-cert`).
    if (cause instanceof DmzError) throw cause;
    const missing = (cause as NodeJS.ErrnoException).path ?? stateDir;
    throw new DmzError(
      'PKI_ERR_NOT_INITIALIZED',
      `the state directory ${JSON.stringify(stateDir)} lacks ${JSON.stringify(missing)}`,
      {
        cause,
        hint: "it was not made by 'dmz-pki init', or a file was removed: restore it from a backup, or make a new CA",
      },
    );
  }
}

/** `ticketKeys` from session-tickets.ts: new ones at every reload make every ticket so far useless. */
export function secureContextOptions(material: RelayTlsMaterial, ticketKeys: Buffer): SecureContextOptions {
  return {
    ca: material.caPem,
    cert: material.certPem,
    key: material.keyPem,
    crl: material.crlPem,
    minVersion: MIN_TLS_VERSION,
    ecdhCurve: KEY_EXCHANGE_GROUPS,
    ticketKeys,
    sessionTimeout: TICKET_LIFETIME_SECONDS,
  };
}

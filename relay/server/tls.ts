/**
 * The agent listener's TLS settings, built in one place so that the first start and every reload
 * pass the full option set: `setSecureContext` resets anything left out, and a reload without the
 * CRL would silently re-admit revoked agents.
 */
import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { SecureContextOptions } from 'node:tls';
import { DmzError } from '../protocol/errors.ts';
import { fileError, quote } from '../protocol/command-line.ts';
import { describeUser, isPermissionError, userName } from '../protocol/file-permissions.ts';
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
    // A damaged file, or a certificate that does not match its key (an interrupted
    // `dmz-pki relay-cert`), says so itself.
    if (cause instanceof DmzError) throw cause;
    const { code, path } = cause as NodeJS.ErrnoException;
    // Only a file's own errors name it; anything else is no missing file, and told as what it is.
    if (path === undefined) throw cause;
    if (isPermissionError(cause)) throw unreadableError(path, cause);
    if (code !== 'ENOENT') throw fileError('read', path, cause);
    throw new DmzError(
      'PKI_ERR_NOT_INITIALIZED',
      `the state directory ${JSON.stringify(stateDir)} lacks ${JSON.stringify(path)}`,
      {
        cause,
        hint: "it was not made by 'dmz-pki init', or a file was removed: restore it from a backup, or make a new CA",
      },
    );
  }
}

/**
 * A state file the relay may not read is there, not missing: most often one a `dmz-pki` run as
 * another user wrote (owned by it, 0600). Saying "lacks" would send the operator to restore a backup.
 */
function unreadableError(path: string, cause: unknown): DmzError {
  const uid = process.geteuid?.() ?? -1;
  const owner = statSync(path, { throwIfNoEntry: false })?.uid;
  const ownedBy = owner === undefined ? '' : ` (owned by ${describeUser(owner)})`;
  const user = userName(uid) ?? String(uid);
  return new DmzError('PKI_ERR_STATE_OWNER', `${quote(path)} is not readable by uid ${uid}${ownedBy}`, {
    cause,
    hint: `give it to the relay's user (chown ${user} ${quote(path)}), and run dmz-pki as that user: runuser -u ${user} -- dmz-pki ...`,
  });
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

/**
 * Where the CA's state lives inside the relay's state directory. `dmz-pki` writes these files and
 * the relay reads them; both name them only through this table. Every state file is its owner's
 * alone (0600): keys, and everything that decides trust.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { replaceFileDurably } from '../relay/protocol/durable-files.ts';

export const STATE_FILES = {
  caCertificate: 'ca.pem',
  caKey: 'ca-key.pem',
  relayCertificate: 'relay.pem',
  relayKey: 'relay-key.pem',
  crl: 'crl.pem',
  tokenSigningKey: 'token-signing-key.pem',
  tokenVerifyKey: 'token-verify-key.pem',
  database: 'pki.db',
} as const;

export type StateFile = keyof typeof STATE_FILES;

/** What SQLite keeps beside pki.db in WAL mode (store.ts), made by whoever opens the store. */
export const DATABASE_SIDE_FILES: readonly string[] = ['-wal', '-shm'].map(
  (suffix) => `${STATE_FILES.database}${suffix}`,
);

/**
 * The PKI audit log (pki/audit-log.ts): kept beside the state it audits, yet not one of
 * STATE_FILES, which a CA cannot do without: a state made before it existed has none.
 */
export const AUDIT_LOG_FILE = 'pki-audit.jsonl';

export function statePath(stateDir: string, file: StateFile): string {
  return join(stateDir, STATE_FILES[file]);
}

export function readState(stateDir: string, file: StateFile): Promise<string> {
  return readFile(statePath(stateDir, file), 'utf8');
}

/**
 * Replaces a state file atomically and durably: a reader (the relay, while `dmz-pki revoke` writes
 * the CRL) never sees half of it, and a power loss leaves the old file or the new one.
 */
export function replaceState(stateDir: string, file: StateFile, contents: string): Promise<void> {
  return replaceFileDurably(statePath(stateDir, file), contents);
}

/**
 * Where the CA's state lives inside the relay's state directory. `dmz-pki` writes these files and
 * the relay reads them; both name them only through this table.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

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

export function statePath(stateDir: string, file: StateFile): string {
  return join(stateDir, STATE_FILES[file]);
}

/** Every state file is readable by its owner only: keys, and everything that decides trust. */
export const SECRET_FILE_MODE = 0o600;

export function readState(stateDir: string, file: StateFile): Promise<string> {
  return readFile(statePath(stateDir, file), 'utf8');
}

/** Replaces a state file atomically (write aside, then rename), so readers never see half. */
export async function replaceState(stateDir: string, file: StateFile, contents: string): Promise<void> {
  const target = statePath(stateDir, file);
  const aside = `${target}.${process.pid}.tmp`;
  await writeFile(aside, contents, { mode: SECRET_FILE_MODE, flag: 'w' });
  await rename(aside, target);
}

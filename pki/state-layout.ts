/**
 * Where the CA's state lives inside the relay's state directory. `dmz-pki` writes these files and
 * the relay reads them; both name them only through this table.
 */
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

/**
 * `dmz-pki`'s side of the key passphrase (pki/passphrase.ts): the option that names its file,
 * and loading the keys it unlocks with errors that say how to give it.
 */
import type { CertificateAuthority } from '../authority.ts';
import {
  explainPassphraseError,
  isPassphraseError,
  PASSPHRASE_ENV,
  readPassphrase as readPassphraseFrom,
} from '../passphrase.ts';
import type { PkiState } from '../state.ts';
import { DmzError } from '../../relay/protocol/errors.ts';

export { PASSPHRASE_ENV };

export const PASSPHRASE_OPTIONS = {
  'passphrase-file': { type: 'string' },
} as const;

export const PASSPHRASE_HELP = `  --passphrase-file F  read the key passphrase from file F (default: $${PASSPHRASE_ENV})`;

const FILE_OPTION = '--passphrase-file';
const HOW_TO_GIVE = `${FILE_OPTION} FILE or ${PASSPHRASE_ENV}`;

/** The passphrase, or undefined when none was given. */
export function readPassphrase(
  file: string | undefined,
  env: NodeJS.ProcessEnv,
): Promise<string | undefined> {
  return readPassphraseFrom({ file, fileSetting: FILE_OPTION, env });
}

/** The CA key; fails, saying how to give the passphrase, when it is encrypted and none was given. */
export async function loadCertificateAuthority(
  state: PkiState,
  passphrase: string | undefined,
): Promise<CertificateAuthority> {
  return explainPassphraseError('CA key', passphrase, HOW_TO_GIVE, () => state.loadCa(passphrase));
}

/** The CA key, or undefined when it is encrypted and no passphrase was given (a wrong one still fails). */
export async function loadCertificateAuthorityIfUnlocked(
  state: PkiState,
  passphrase: string | undefined,
): Promise<CertificateAuthority | undefined> {
  try {
    return await loadCertificateAuthority(state, passphrase);
  } catch (error) {
    if (passphrase === undefined && isPassphraseError(error)) return undefined;
    throw error;
  }
}

export async function loadTokenSigningKey(state: PkiState, passphrase: string | undefined): Promise<string> {
  return explainPassphraseError('token-signing key', passphrase, HOW_TO_GIVE, () =>
    state.loadTokenSigningKey(passphrase),
  );
}

/** The backup's own passphrase: not the CA key's, which may sit in a file on the appliance itself. */
export const BACKUP_PASSPHRASE_ENV = 'DMZ_BACKUP_PASSPHRASE';
const BACKUP_FILE_OPTION = '--backup-passphrase-file';

export const BACKUP_PASSPHRASE_OPTIONS = {
  'backup-passphrase-file': { type: 'string' },
} as const;

export const BACKUP_PASSPHRASE_HELP = `  --backup-passphrase-file F
                       read the backup passphrase from file F (default: $${BACKUP_PASSPHRASE_ENV})`;

/** The backup passphrase; unlike the CA key's it is never optional. */
export async function readBackupPassphrase(
  file: string | undefined,
  env: NodeJS.ProcessEnv,
): Promise<string> {
  const passphrase = await readPassphraseFrom({
    file,
    fileSetting: BACKUP_FILE_OPTION,
    env,
    envVariable: BACKUP_PASSPHRASE_ENV,
    code: 'PKI_ERR_BACKUP_PASSPHRASE',
  });
  if (passphrase === undefined) {
    throw new DmzError('PKI_ERR_BACKUP_PASSPHRASE', 'no backup passphrase was given', {
      hint: `give it with ${BACKUP_FILE_OPTION} FILE or ${BACKUP_PASSPHRASE_ENV}`,
    });
  }
  return passphrase;
}

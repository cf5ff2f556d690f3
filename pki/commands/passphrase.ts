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

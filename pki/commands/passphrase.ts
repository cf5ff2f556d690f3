/**
 * The passphrase that encrypts the CA key and the token-signing key at rest. It comes from a file
 * or the environment, never from an argument: arguments show in `ps` and in shell history.
 */
import { readFile } from 'node:fs/promises';
import { DmzError } from '../../relay/protocol/errors.ts';
import type { CertificateAuthority } from '../authority.ts';
import { PASSPHRASE_ENV, type PkiState } from '../state.ts';

export { PASSPHRASE_ENV };
import { invalidArgument, quote } from './command.ts';

export const PASSPHRASE_OPTIONS = {
  'passphrase-file': { type: 'string' },
} as const;

export const PASSPHRASE_HELP = `  --passphrase-file F  read the key passphrase from file F (default: $${PASSPHRASE_ENV})`;

const HOW_TO_GIVE = `--passphrase-file FILE or ${PASSPHRASE_ENV}`;

/** The passphrase, or undefined when none was given. A file's one trailing newline is not part of it. */
export async function readPassphrase(
  file: string | undefined,
  env: NodeJS.ProcessEnv,
): Promise<string | undefined> {
  let passphrase: string;
  if (file !== undefined) {
    try {
      passphrase = (await readFile(file, 'utf8')).replace(/\r?\n$/, '');
    } catch (cause) {
      const reason = (cause as NodeJS.ErrnoException).code ?? 'unreadable';
      throw invalidArgument(`cannot read --passphrase-file ${quote(file)} (${reason})`);
    }
    if (passphrase === '') throw invalidArgument(`--passphrase-file ${quote(file)} is empty`);
    return passphrase;
  }
  const fromEnv = env[PASSPHRASE_ENV];
  if (fromEnv === undefined) return undefined;
  // An empty passphrase is never meant: refusing it beats encrypting the CA key with nothing.
  if (fromEnv === '') throw invalidArgument(`${PASSPHRASE_ENV} is set but empty`);
  return fromEnv;
}

/** The CA key; fails, saying how to give the passphrase, when it is encrypted and none was given. */
export async function loadCertificateAuthority(
  state: PkiState,
  passphrase: string | undefined,
): Promise<CertificateAuthority> {
  return explainPassphraseError('CA key', passphrase, () => state.loadCa(passphrase));
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
  return explainPassphraseError('token-signing key', passphrase, () => state.loadTokenSigningKey(passphrase));
}

async function explainPassphraseError<T>(
  key: string,
  passphrase: string | undefined,
  load: () => Promise<T>,
): Promise<T> {
  try {
    return await load();
  } catch (error) {
    if (!isPassphraseError(error)) throw error;
    const message =
      passphrase === undefined
        ? `the ${key} is encrypted: give its passphrase with ${HOW_TO_GIVE}`
        : `the passphrase does not decrypt the ${key}`;
    throw new DmzError('PKI_ERR_PASSPHRASE', message, { cause: error });
  }
}

function isPassphraseError(error: unknown): boolean {
  return error instanceof DmzError && error.code === 'PKI_ERR_PASSPHRASE';
}

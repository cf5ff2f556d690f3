/**
 * The passphrase that encrypts the CA key and the token-signing key at rest, as `dmz-pki` and the
 * relay both read it: from a file or the environment, never from an argument (arguments show in
 * `ps` and in shell history). A missing or wrong one is explained in the words of the tool that
 * asked: which setting gives it (`--passphrase-file` or `pki.passphraseFile`).
 */
import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileError, quote } from '../relay/protocol/command-line.ts';
import { DmzError } from '../relay/protocol/errors.ts';
import { refuseOpenPermissions } from '../relay/protocol/file-permissions.ts';
/** Where the relay and `dmz-pki` look for the key passphrase when no file is given. */
export const PASSPHRASE_ENV = 'DMZ_PKI_PASSPHRASE';

export interface PassphraseSource {
  /** The file named by the operator, if any. */
  readonly file: string | undefined;
  /** How the operator names that file in this tool: `--passphrase-file` or `pki.passphraseFile`. */
  readonly fileSetting: string;
  readonly env: NodeJS.ProcessEnv;
  /** The variable read when no file is named; PASSPHRASE_ENV (the CA key's) by default. */
  readonly envVariable?: string;
  /** The code of a refusal (an empty file or variable); the CA key's by default. */
  readonly code?: PassphraseErrorCode;
}

type PassphraseErrorCode = 'PKI_ERR_PASSPHRASE' | 'PKI_ERR_BACKUP_PASSPHRASE';

/** The passphrase, or undefined when none was given. A file's one trailing newline is not part of it. */
export async function readPassphrase(source: PassphraseSource): Promise<string | undefined> {
  const { file, fileSetting, env, envVariable = PASSPHRASE_ENV, code = 'PKI_ERR_PASSPHRASE' } = source;
  if (file !== undefined) {
    let passphrase: string;
    try {
      refuseExposedFile(file, fileSetting, code);
      passphrase = (await readFile(file, 'utf8')).replace(/\r?\n$/, '');
    } catch (cause) {
      if (cause instanceof DmzError) throw cause;
      throw fileError(`read the passphrase file (${fileSetting})`, file, cause);
    }
    // An empty passphrase is never meant: refusing it beats encrypting the CA key with nothing.
    if (passphrase === '') {
      throw new DmzError(code, `the passphrase file ${quote(file)} (${fileSetting}) is empty`, {
        hint: 'write the passphrase into it, on one line',
      });
    }
    return passphrase;
  }
  const fromEnv = env[envVariable];
  if (fromEnv === undefined) return undefined;
  if (fromEnv === '') {
    throw new DmzError(code, `${envVariable} is set but empty`, {
      hint: `unset it, or set it to the passphrase`,
    });
  }
  return fromEnv;
}

/**
 * A passphrase others may read is as good as given to them: refused like an open state file
 * (file-permissions.ts), whoever owns it (the relay may read one root keeps for it, 0400). A
 * regular file, or a pipe (`--passphrase-file <(pass show ca)`, 0600 from the shell): a directory
 * or a device is no passphrase.
 */
function refuseExposedFile(file: string, fileSetting: string, code: PassphraseErrorCode): void {
  const stats = statSync(file);
  if (!stats.isFile() && !stats.isFIFO()) {
    throw new DmzError(
      code,
      `the passphrase file ${quote(file)} (${fileSetting}) is not a regular file or a pipe`,
      {
        hint: 'write the passphrase into a file only its owner may read: (umask 077; cat > FILE)',
      },
    );
  }
  refuseOpenPermissions(file, { code, owner: 'any', setting: fileSetting });
}

/**
 * Runs `load` (a key decryption); a missing or wrong passphrase becomes an error that names the
 * key and how to give the passphrase (`--passphrase-file FILE or DMZ_PKI_PASSPHRASE`).
 */
export async function explainPassphraseError<T>(
  key: string,
  passphrase: string | undefined,
  howToGive: string,
  load: () => Promise<T>,
): Promise<T> {
  try {
    return await load();
  } catch (error) {
    if (!isPassphraseError(error)) throw error;
    if (passphrase === undefined) {
      throw new DmzError('PKI_ERR_PASSPHRASE', `the ${key} is encrypted and no passphrase was given`, {
        cause: error,
        hint: `give it with ${howToGive}`,
      });
    }
    throw new DmzError('PKI_ERR_PASSPHRASE', `the passphrase does not decrypt the ${key}`, {
      cause: error,
      hint: `check the passphrase given with ${howToGive}`,
    });
  }
}

export function isPassphraseError(error: unknown): boolean {
  return error instanceof DmzError && error.code === 'PKI_ERR_PASSPHRASE';
}

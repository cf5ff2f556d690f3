/**
 * A state file that is there but damaged (truncated, overwritten, a key of the wrong kind), told
 * as such: the file, why, and the remedy that file has. Every key and certificate of the state is
 * parsed here, so no reader passes on an OpenSSL decoder error ("DECODER routines::unsupported")
 * that names nothing, and no command finds a key unusable after it has already changed the CA.
 */
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { statSync } from 'node:fs';
import forge from 'node-forge';
import { quote } from '../relay/protocol/command-line.ts';
import { DmzError } from '../relay/protocol/errors.ts';
import { userName } from '../relay/protocol/file-permissions.ts';
import { statePath, type StateFile } from './state-layout.ts';

/** The key files of the state, each with the one key type its users take. */
const KEY_TYPES = {
  // node-forge builds our certificates and CRLs with RSA keys only (keys.ts).
  caKey: 'rsa',
  relayKey: 'rsa',
  // EdDSA enrollment tokens (tokens.ts).
  tokenSigningKey: 'ed25519',
} as const;

export type StateKeyFile = keyof typeof KEY_TYPES;

const ENCRYPTED_KEY_LABEL = 'ENCRYPTED PRIVATE KEY';

export interface StateKeyOptions {
  /** For a key encrypted at rest; none given, an encrypted key is PKI_ERR_PASSPHRASE. */
  readonly passphrase?: string | undefined;
  /** The public key this key must belong to (the CA certificate's, the token verify key). */
  readonly publicKey?: KeyObject;
  /** The state file holding `publicKey`, as the refusal names it. */
  readonly publicKeyFile?: StateFile;
}

/**
 * The key in `pem` (read from `file`), decrypted. PKI_ERR_PASSPHRASE when it is encrypted and no
 * passphrase was given or the one given does not decrypt it; PKI_ERR_STATE_DAMAGED when it is no
 * key of the expected type, or not the one of `publicKey`. An encrypted key's envelope is checked
 * before its passphrase is asked for: a damaged one is refused even when none is given (`revoke`
 * would otherwise revoke, leaving the CRL to a relay that cannot start on that key).
 */
export function parseStateKey(
  stateDir: string,
  file: StateKeyFile,
  pem: string,
  options: StateKeyOptions = {},
): KeyObject {
  const encrypted = pem.includes(ENCRYPTED_KEY_LABEL);
  const damaged = (why: string) => damagedStateFile(stateDir, file, why);
  if (encrypted && !isEncryptedKeyEnvelope(pem)) throw damaged('it is not a readable encrypted key (PEM)');
  if (encrypted && options.passphrase === undefined) {
    throw new DmzError(
      'PKI_ERR_PASSPHRASE',
      `${quote(statePath(stateDir, file))} is encrypted: give its passphrase`,
    );
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(encrypted ? { key: pem, passphrase: options.passphrase } : pem);
  } catch (cause) {
    // The envelope is sound (checked above), so what fails is the passphrase: a wrong one fails
    // CBC's padding check, or passes it about once in 256 tries and fails the decoder. Either way
    // never "damaged", which would send the operator to a backup for a typo.
    if (encrypted) throw new DmzError('PKI_ERR_PASSPHRASE', undefined, { cause });
    throw damaged('it is not a PEM private key');
  }
  const type = KEY_TYPES[file];
  if (key.asymmetricKeyType !== type) {
    throw damaged(`it holds a key of type ${key.asymmetricKeyType ?? 'unknown'}, not ${type}`);
  }
  const { publicKey, publicKeyFile = 'caCertificate' } = options;
  if (publicKey !== undefined && !createPublicKey(key).equals(publicKey)) {
    throw damaged(`it is not the key of ${quote(statePath(stateDir, publicKeyFile))}`);
  }
  return key;
}

/** The certificate in `pem` (read from `file`), or PKI_ERR_STATE_DAMAGED. */
export function parseStateCertificate(
  stateDir: string,
  file: 'caCertificate' | 'relayCertificate',
  pem: string,
): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch {
    throw damagedStateFile(stateDir, file, 'it is not a PEM certificate');
  }
}

/** The public key in `pem` (read from `file`), or PKI_ERR_STATE_DAMAGED. */
export function parseStatePublicKey(stateDir: string, file: 'tokenVerifyKey', pem: string): KeyObject {
  try {
    return createPublicKey({ key: pem, format: 'pem' });
  } catch {
    throw damagedStateFile(stateDir, file, 'it is not a PEM public key');
  }
}

/**
 * `the CA state in "/var/lib/dmz-relay" is damaged: ".../ca-key.pem": it is not a PEM private key`,
 * with the remedy of that file: the relay's pair is made anew by `dmz-pki relay-cert`; the rest
 * is the CA itself, which only its backup gives back.
 */
export function damagedStateFile(stateDir: string, file: StateFile, why: string): DmzError {
  return new DmzError(
    'PKI_ERR_STATE_DAMAGED',
    `the CA state in ${quote(stateDir)} is damaged: ${quote(statePath(stateDir, file))}: ${why}`,
    { hint: remedyOf(stateDir, file) },
  );
}

function remedyOf(stateDir: string, file: StateFile): string {
  if (file === 'relayKey' || file === 'relayCertificate') {
    // Without a readable certificate, relay-cert cannot keep its names: they must be given.
    const names = file === 'relayCertificate' ? ' --dns NAME... --ip ADDR...' : '';
    return `make the relay a new key and certificate: 'dmz-pki --state ${quote(stateDir)} relay-cert${names}', run as ${ownerOf(stateDir)}`;
  }
  return "restore the state from its backup into an empty directory ('dmz-pki --state NEW_DIR restore --in BACKUP'); do not run init over it";
}

/** Who runs dmz-pki on this state: a run as anyone else is refused (state-owner.ts). */
function ownerOf(stateDir: string): string {
  const uid = statSync(stateDir, { throwIfNoEntry: false })?.uid;
  if (uid === undefined) return 'the owner of the state directory';
  const name = userName(uid);
  return `the owner of the state directory (${name ?? `uid ${uid}`})`;
}

/** Whether `pem` holds a well-formed PKCS#8 EncryptedPrivateKeyInfo (RFC 5958 section 3). */
function isEncryptedKeyEnvelope(pem: string): boolean {
  try {
    forge.pki.encryptedPrivateKeyFromPem(pem);
    return true;
  } catch {
    return false;
  }
}

/**
 * The CA's state directory: created once by `dmz-pki init`, then opened by the CLI and the relay.
 * Directory 0700, every file 0600, created exclusively so nothing is ever overwritten; the CA key
 * and the token-signing key are encrypted when a passphrase is given.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import {
  fileError,
  firstMissingDirectory,
  quote,
  removeOnInterrupt,
} from '../relay/protocol/command-line.ts';
import {
  asidePath,
  createPrivateDirectory,
  syncDirectory,
  writeNewFileFlushed,
} from '../relay/protocol/durable-files.ts';
import { DmzError } from '../relay/protocol/errors.ts';
import { isPermissionError } from '../relay/protocol/file-permissions.ts';
import { isTrustDomain } from '../relay/protocol/identity.ts';
import {
  createCertificateAuthority,
  issueServerCertificate,
  type CertificateAuthority,
} from './authority.ts';
import { auditLogPath } from './audit-log.ts';
import { recordCommand } from './audit-trail.ts';
import { spkiFingerprint } from './fingerprint.ts';
import { AGENT_KEY_BITS, generateRsaKeyPair } from './keys.ts';
import { RELAY_CERTIFICATE_DAYS } from './relay-certificate.ts';
import { readState, STATE_FILES, statePath, type StateFile } from './state-layout.ts';
import { PKI_CLI_OPENER, type StateOpener } from './state-owner.ts';
import {
  damagedStateFile,
  parseStateCertificate,
  parseStateKey,
  parseStatePublicKey,
} from './state-damage.ts';
import { openPkiStore, type PkiStore } from './store.ts';
import { generateTokenSigningKey } from './tokens.ts';
import { writeCrl } from './revocation.ts';

/** Key encryption for PEM files at rest (PKCS#8, RFC 5958 with PBES2). */
const KEY_CIPHER = 'aes-256-cbc';

const META = {
  trustDomain: 'trust_domain',
  enrollmentUrls: 'enrollment_urls',
  caFingerprint: 'ca_fingerprint',
} as const;

export interface InitializeOptions {
  readonly stateDir: string;
  readonly trustDomain: string;
  /** Names and addresses agents use to reach the relay (its server certificate's SANs). */
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
  /** Enrollment endpoints written into every token (`https://relay.plant:8444`). */
  readonly enrollmentUrls: readonly string[];
  readonly passphrase?: string;
  /** Tests use 2048 to save time; production keeps the 3072-bit default. */
  readonly caKeyBits?: number;
}

export interface PkiState {
  readonly stateDir: string;
  readonly store: PkiStore;
  readonly trustDomain: string;
  readonly enrollmentUrls: readonly string[];
  readonly caCertPem: string;
  readonly caFingerprint: string;
  /** The token issuer name (`iss`): tokens from another relay's state never verify here. */
  readonly tokenIssuer: string;
  readonly tokenVerifyKeyPem: string;
  /**
   * Decrypts the CA key (PKI_ERR_PASSPHRASE when missing or wrong) and checks it is the CA
   * certificate's (PKI_ERR_STATE_DAMAGED): a command that needs it loads it before it changes anything.
   */
  loadCa(passphrase?: string): Promise<CertificateAuthority>;
  /** Likewise, the token-signing key, checked to be the token verify key's. */
  loadTokenSigningKey(passphrase?: string): Promise<string>;
  close(): void;
}

export async function initializeState(options: InitializeOptions): Promise<{ caFingerprint: string }> {
  const { stateDir } = options;
  if (!isTrustDomain(options.trustDomain)) {
    throw new DmzError('PKI_ERR_CERT_INVALID', 'trust domain must be a lower-case DNS-like name');
  }
  if (stateFileExists(stateDir, 'caCertificate') || stateFileExists(stateDir, 'caKey')) {
    throw new DmzError(
      'PKI_ERR_ALREADY_INITIALIZED',
      `${JSON.stringify(stateDir)} already holds a certificate authority`,
      { hint: 'it is left as it is; choose another directory for a new CA' },
    );
  }
  // In a directory that was there already, the state files not there yet are this call's.
  const made = Object.keys(STATE_FILES)
    .filter((file) => !stateFileExists(stateDir, file as StateFile))
    .map((file) => statePath(stateDir, file as StateFile));
  const database = statePath(stateDir, 'database');
  if (made.includes(database)) made.push(`${database}-wal`, `${database}-shm`, `${database}-journal`);
  // replaceState's file aside, should the signal come between its write and its rename.
  const crl = statePath(stateDir, 'crl');
  if (made.includes(crl)) made.push(asidePath(crl));
  // The audit log too, unless one was there: a record of the past is never removed.
  const auditLog = auditLogPath(stateDir);
  if (!existsSync(auditLog)) made.push(auditLog);
  // A CA half made is no CA: what this call created goes, on failure and on Ctrl-C alike, so
  // `init` can simply be run again. Watched from before the directory is made.
  const willCreate = firstMissingDirectory(stateDir);
  const leftovers = () => (willCreate === undefined ? made : [willCreate]);
  const keepOnInterrupt = removeOnInterrupt(leftovers);
  try {
    await createPrivateDirectory(stateDir);
  } catch (cause) {
    keepOnInterrupt();
    throw fileError('create the state directory', stateDir, cause);
  }
  try {
    return await createState(options);
  } catch (error) {
    await Promise.all(leftovers().map((path) => rm(path, { recursive: true, force: true })));
    throw error;
  } finally {
    keepOnInterrupt();
  }
}

async function createState(options: InitializeOptions): Promise<{ caFingerprint: string }> {
  const { stateDir } = options;
  const store = openPkiStore(stateDir);
  try {
    const [ca, relayKeys, tokenKeys] = await Promise.all([
      createCertificateAuthority({
        commonName: `dmz-relay CA ${options.trustDomain}`,
        ...(options.caKeyBits === undefined ? {} : { keyBits: options.caKeyBits }),
      }),
      generateRsaKeyPair(AGENT_KEY_BITS),
      generateTokenSigningKey(),
    ]);
    const relay = await issueServerCertificate({
      ca,
      publicKeyPem: relayKeys.publicKeyPem,
      dnsNames: [...options.dnsNames],
      ipAddresses: [...options.ipAddresses],
      lifetimeDays: RELAY_CERTIFICATE_DAYS,
    });
    const protect = (pem: string) => encryptKey(pem, options.passphrase);
    await writeNew(stateDir, 'caKey', protect(ca.keyPem));
    await writeNew(stateDir, 'caCertificate', ca.certPem);
    await writeNew(stateDir, 'relayKey', relayKeys.privateKeyPem);
    await writeNew(stateDir, 'relayCertificate', relay.certPem);
    await writeNew(stateDir, 'tokenSigningKey', protect(tokenKeys.privateKeyPem));
    await writeNew(stateDir, 'tokenVerifyKey', tokenKeys.publicKeyPem);
    await syncDirectory(stateDir);
    const caFingerprint = spkiFingerprint(ca.certPem);
    store.setMeta(META.trustDomain, options.trustDomain);
    store.setMeta(META.enrollmentUrls, JSON.stringify(options.enrollmentUrls));
    store.setMeta(META.caFingerprint, caFingerprint);
    await writeCrl({ stateDir, store, ca });
    // The log's first record: a CA whose making cannot be audited is not made (the caller removes it).
    recordCommand({ stateDir, store, caFingerprint }, 'init', {
      trustDomain: options.trustDomain,
      caFingerprint,
      dnsNames: options.dnsNames,
      ipAddresses: options.ipAddresses,
      enrollmentUrls: options.enrollmentUrls,
      keysEncrypted: options.passphrase !== undefined,
    });
    return { caFingerprint };
  } finally {
    store.close();
  }
}

/** `opener` is the program opening it, for the refusal of another user's state (state-owner.ts). */
export async function openState(stateDir: string, opener: StateOpener = PKI_CLI_OPENER): Promise<PkiState> {
  const notInitialized = () =>
    new DmzError('PKI_ERR_NOT_INITIALIZED', `no certificate authority in ${JSON.stringify(stateDir)}`, {
      hint: `check the state directory given, or create one with 'dmz-pki --state ${JSON.stringify(stateDir)} init'`,
    });
  if (!stateFileExists(stateDir, 'caCertificate')) throw notInitialized();
  // A CA whose database is gone is damaged, not new: opening would make an empty one.
  if (!stateFileExists(stateDir, 'database')) throw damagedStateFile(stateDir, 'database', 'it is missing');
  const store = openStore(stateDir, opener);
  try {
    const trustDomain = store.getMeta(META.trustDomain);
    const caFingerprint = store.getMeta(META.caFingerprint);
    if (trustDomain === undefined || caFingerprint === undefined) throw notInitialized();
    const [caCertPem, tokenVerifyKeyPem] = await Promise.all([
      readStateFile(stateDir, 'caCertificate'),
      readStateFile(stateDir, 'tokenVerifyKey'),
    ]);
    const caPublicKey = parseStateCertificate(stateDir, 'caCertificate', caCertPem).publicKey;
    const tokenVerifyKey = parseStatePublicKey(stateDir, 'tokenVerifyKey', tokenVerifyKeyPem);
    return {
      stateDir,
      store,
      trustDomain,
      enrollmentUrls: JSON.parse(store.getMeta(META.enrollmentUrls) ?? '[]') as string[],
      caCertPem,
      caFingerprint,
      tokenIssuer: `spiffe://${trustDomain}`,
      tokenVerifyKeyPem,
      async loadCa(passphrase) {
        const pem = await readStateFile(stateDir, 'caKey');
        const key = parseStateKey(stateDir, 'caKey', pem, { passphrase, publicKey: caPublicKey });
        return { certPem: caCertPem, keyPem: pkcs8Pem(key) };
      },
      async loadTokenSigningKey(passphrase) {
        const pem = await readStateFile(stateDir, 'tokenSigningKey');
        return pkcs8Pem(
          parseStateKey(stateDir, 'tokenSigningKey', pem, {
            passphrase,
            publicKey: tokenVerifyKey,
            publicKeyFile: 'tokenVerifyKey',
          }),
        );
      },
      close: () => store.close(),
    };
  } catch (error) {
    store.close();
    throw error;
  }
}

/**
 * Whether a state file exists. existsSync says "no" for a file it may not look at, which would
 * tell the operator of a directory owned by another user that there is no CA (and `init` then
 * that there is one): a permission error is told as one.
 */
function stateFileExists(stateDir: string, file: StateFile): boolean {
  const path = statePath(stateDir, file);
  try {
    return statSync(path, { throwIfNoEntry: false }) !== undefined;
  } catch (cause) {
    if (isPermissionError(cause)) throw accessError(stateDir, path, cause);
    if ((cause as NodeJS.ErrnoException).code === 'ENOTDIR') return false;
    throw fileError('read', path, cause);
  }
}

async function readStateFile(stateDir: string, file: StateFile): Promise<string> {
  try {
    return await readState(stateDir, file);
  } catch (cause) {
    const path = statePath(stateDir, file);
    if (isPermissionError(cause)) throw accessError(stateDir, path, cause);
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT')
      throw damagedStateFile(stateDir, file, 'it is missing');
    throw fileError('read', path, cause);
  }
}

function openStore(stateDir: string, opener: StateOpener): PkiStore {
  const path = statePath(stateDir, 'database');
  try {
    return openPkiStore(stateDir, opener);
  } catch (cause) {
    if (cause instanceof DmzError) throw cause;
    if (isPermissionError(cause)) throw accessError(stateDir, path, cause);
    const code = (cause as { code?: unknown }).code;
    // better-sqlite3 names SQLite's result codes: SQLITE_CANTOPEN is a file it may not open or
    // write (a read-only directory for the -wal file); SQLITE_NOTADB and SQLITE_CORRUPT a damaged file.
    if (code === 'SQLITE_CANTOPEN' || code === 'SQLITE_READONLY' || code === 'SQLITE_PERM') {
      throw accessError(stateDir, path, cause);
    }
    if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
      throw damagedStateFile(stateDir, 'database', 'it is not a readable database');
    }
    throw cause;
  }
}

/** `cannot read "/var/lib/dmz-relay/ca.pem": permission denied (CLI_ERR_FILE); run as ...`. */
function accessError(stateDir: string, path: string, cause: unknown): DmzError {
  let owner = '';
  try {
    owner = ` (uid ${statSync(stateDir).uid})`;
  } catch {
    // Not even the directory can be looked at: its owner is unknown here.
  }
  const reason = (cause as { code?: unknown }).code;
  const errno = typeof reason === 'string' && reason.startsWith('SQLITE_') ? { code: 'EACCES' } : cause;
  return fileError(
    'read',
    path,
    errno,
    `run as the owner of the state directory ${quote(stateDir)}${owner}, or fix its permissions`,
  );
}

/** Created exclusively, so nothing is ever overwritten, and flushed: a CA `init` reported made is on disk. */
function writeNew(stateDir: string, file: StateFile, contents: string): Promise<void> {
  return writeNewFileFlushed(statePath(stateDir, file), contents);
}

function encryptKey(pem: string, passphrase: string | undefined): string {
  if (passphrase === undefined) return pem;
  return createPrivateKey(pem).export({
    type: 'pkcs8',
    format: 'pem',
    cipher: KEY_CIPHER,
    passphrase,
  }) as string;
}

/** Keys leave the state decrypted, as the signers take them (PKCS#8 PEM, in memory only). */
function pkcs8Pem(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }) as string;
}

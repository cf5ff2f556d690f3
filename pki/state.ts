/**
 * The CA's state directory: created once by `dmz-pki init`, then opened by the CLI and the relay.
 * Directory 0700, every file 0600, created exclusively so nothing is ever overwritten; the CA key
 * and the token-signing key are encrypted when a passphrase is given.
 */
import { createPrivateKey } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { fileError } from '../relay/protocol/command-line.ts';
import { DmzError } from '../relay/protocol/errors.ts';
import { isTrustDomain } from '../relay/protocol/identity.ts';
import {
  createCertificateAuthority,
  issueServerCertificate,
  type CertificateAuthority,
} from './authority.ts';
import { spkiFingerprint } from './fingerprint.ts';
import { AGENT_KEY_BITS, generateRsaKeyPair } from './keys.ts';
import { readState, SECRET_FILE_MODE, statePath, type StateFile } from './state-layout.ts';
import { openPkiStore, type PkiStore } from './store.ts';
import { generateTokenSigningKey } from './tokens.ts';
import { writeCrl } from './revocation.ts';

const STATE_DIR_MODE = 0o700;
/** The relay's own server certificate: a year, renewed with the appliance's maintenance. */
const RELAY_CERTIFICATE_DAYS = 365;
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
  /** Decrypts the CA key (PKI_ERR_PASSPHRASE when missing or wrong). */
  loadCa(passphrase?: string): Promise<CertificateAuthority>;
  loadTokenSigningKey(passphrase?: string): Promise<string>;
  close(): void;
}

export async function initializeState(options: InitializeOptions): Promise<{ caFingerprint: string }> {
  const { stateDir } = options;
  if (!isTrustDomain(options.trustDomain)) {
    throw new DmzError('PKI_ERR_CERT_INVALID', 'trust domain must be a lower-case DNS-like name');
  }
  if (existsSync(statePath(stateDir, 'caCertificate')) || existsSync(statePath(stateDir, 'caKey'))) {
    throw new DmzError(
      'PKI_ERR_ALREADY_INITIALIZED',
      `${JSON.stringify(stateDir)} already holds a certificate authority`,
      { hint: 'it is left as it is; choose another directory for a new CA' },
    );
  }
  let created: string | undefined;
  try {
    created = await mkdir(stateDir, { recursive: true, mode: STATE_DIR_MODE });
  } catch (cause) {
    throw fileError('create the state directory', stateDir, cause);
  }
  try {
    return await createState(options);
  } catch (error) {
    // A CA half made is no CA: what this call created goes, so `init` can simply be run again.
    if (created !== undefined) await rm(created, { recursive: true, force: true });
    throw error;
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
    const caFingerprint = spkiFingerprint(ca.certPem);
    store.setMeta(META.trustDomain, options.trustDomain);
    store.setMeta(META.enrollmentUrls, JSON.stringify(options.enrollmentUrls));
    store.setMeta(META.caFingerprint, caFingerprint);
    await writeCrl(stateDir, store, ca);
    return { caFingerprint };
  } finally {
    store.close();
  }
}

export async function openState(stateDir: string): Promise<PkiState> {
  const notInitialized = () =>
    new DmzError('PKI_ERR_NOT_INITIALIZED', `no certificate authority in ${JSON.stringify(stateDir)}`, {
      hint: `check the state directory given, or create one with 'dmz-pki --state ${JSON.stringify(stateDir)} init'`,
    });
  if (!existsSync(statePath(stateDir, 'caCertificate'))) throw notInitialized();
  const store = openPkiStore(stateDir);
  try {
    const trustDomain = store.getMeta(META.trustDomain);
    const caFingerprint = store.getMeta(META.caFingerprint);
    if (trustDomain === undefined || caFingerprint === undefined) throw notInitialized();
    const [caCertPem, tokenVerifyKeyPem] = await Promise.all([
      readState(stateDir, 'caCertificate'),
      readState(stateDir, 'tokenVerifyKey'),
    ]);
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
        return { certPem: caCertPem, keyPem: decryptKey(await readState(stateDir, 'caKey'), passphrase) };
      },
      async loadTokenSigningKey(passphrase) {
        return decryptKey(await readState(stateDir, 'tokenSigningKey'), passphrase);
      },
      close: () => store.close(),
    };
  } catch (error) {
    store.close();
    throw error;
  }
}

function writeNew(stateDir: string, file: StateFile, contents: string): Promise<void> {
  return writeFile(statePath(stateDir, file), contents, { mode: SECRET_FILE_MODE, flag: 'wx' });
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

function decryptKey(pem: string, passphrase: string | undefined): string {
  const encrypted = pem.includes('ENCRYPTED PRIVATE KEY');
  if (encrypted && passphrase === undefined)
    throw new DmzError('PKI_ERR_PASSPHRASE', 'the CA key is encrypted: give its passphrase');
  if (!encrypted) return pem;
  try {
    return createPrivateKey({ key: pem, passphrase }).export({ type: 'pkcs8', format: 'pem' }) as string;
  } catch (cause) {
    throw new DmzError('PKI_ERR_PASSPHRASE', undefined, { cause });
  }
}

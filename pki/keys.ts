/**
 * RSA key pairs for the CA, the relay and agents, and the one rule for which public keys the CA
 * will certify. RSA only: node-forge, which builds our certificate structures, cannot read other
 * key types.
 */
import { generateKeyPair } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { promisify } from 'node:util';

/**
 * The CA key signs every certificate and CRL for the lifetime of the CA (years): 3072 bits is
 * NIST SP 800-57 Part 1 (table 2) 128-bit security, the level recommended for use beyond 2030.
 */
export const CA_KEY_BITS = 3072;
/** Agent keys live only as long as their short-lived certificates (days), so 2048 bits suffice. */
export const AGENT_KEY_BITS = 2048;
/**
 * Below 2048 bits RSA is under 112-bit security (NIST SP 800-57 Part 1, table 2) and OpenSSL's
 * default security level 2 refuses it in TLS anyway: a weaker key would enroll, then fail to connect.
 */
export const MIN_RSA_BITS = 2048;
/**
 * Public-key operations grow with the square of the modulus: a CSR with a huge key would make
 * verifying it (and every later handshake with it) expensive. 8192 bits is far above any real need.
 */
export const MAX_RSA_BITS = 8192;
/** FIPS 186-5 appendix A.1.1: the public exponent is odd and 2^16 < e < 2^256. */
const MIN_PUBLIC_EXPONENT = 65537n;
const MAX_PUBLIC_EXPONENT = 2n ** 256n;

export interface RsaKeyPair {
  /** PKCS#8 PEM ("PRIVATE KEY"). */
  readonly privateKeyPem: string;
  /** SubjectPublicKeyInfo PEM ("PUBLIC KEY"). */
  readonly publicKeyPem: string;
}

const generateKeyPairAsync = promisify(generateKeyPair);

/** Generates in libuv's thread pool: an RSA-3072 key takes seconds of CPU, the event loop none. */
export async function generateRsaKeyPair(bits: number): Promise<RsaKeyPair> {
  if (!Number.isSafeInteger(bits) || bits < MIN_RSA_BITS || bits > MAX_RSA_BITS) {
    throw new RangeError(`RSA key size must be between ${MIN_RSA_BITS} and ${MAX_RSA_BITS} bits`);
  }
  const { privateKey, publicKey } = await generateKeyPairAsync('rsa', {
    modulusLength: bits,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { privateKeyPem: privateKey, publicKeyPem: publicKey };
}

/**
 * The CA certifies only plain RSA keys (not RSA-PSS-restricted ones) between MIN_RSA_BITS and
 * MAX_RSA_BITS with a sane public exponent; everything else is refused before it is signed.
 */
export function isAcceptableRsaPublicKey(key: KeyObject): boolean {
  if (key.type !== 'public' || key.asymmetricKeyType !== 'rsa') return false;
  const { modulusLength, publicExponent } = key.asymmetricKeyDetails ?? {};
  return (
    modulusLength !== undefined &&
    modulusLength >= MIN_RSA_BITS &&
    modulusLength <= MAX_RSA_BITS &&
    publicExponent !== undefined &&
    publicExponent % 2n === 1n &&
    publicExponent >= MIN_PUBLIC_EXPONENT &&
    publicExponent < MAX_PUBLIC_EXPONENT
  );
}

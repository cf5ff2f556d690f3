/**
 * The CA pin carried in enrollment tokens: SHA-256 over the DER SubjectPublicKeyInfo, as kubeadm's
 * `--discovery-token-ca-cert-hash` and RFC 7469 section 2.4 do. Hashing the key rather than the
 * certificate keeps the pin valid when the CA certificate is re-issued with the same key.
 */
import { X509Certificate, createHash, createPublicKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { DmzError } from '../relay/protocol/errors.ts';

export const FINGERPRINT_PREFIX = 'sha256:';

const PEM_LABEL = /^-----BEGIN ([A-Z0-9 ]+)-----/;

/** `sha256:<64 lowercase hex>` of the SPKI in a certificate PEM or a public-key PEM. */
export function spkiFingerprint(pem: string): string {
  const spkiDer = readPublicKey(pem).export({ type: 'spki', format: 'der' });
  return FINGERPRINT_PREFIX + createHash('sha256').update(spkiDer).digest('hex');
}

function readPublicKey(pem: string): KeyObject {
  const label = PEM_LABEL.exec(pem.trimStart())?.[1];
  try {
    // Only these two labels: a private key PEM would also yield a public key, but handing one
    // to a function that prints pins is a mistake worth refusing.
    if (label === 'CERTIFICATE') return new X509Certificate(pem).publicKey;
    if (label === 'PUBLIC KEY') return createPublicKey({ key: pem, format: 'pem' });
  } catch (error) {
    throw new DmzError('PKI_ERR_CERT_INVALID', 'certificate or public key could not be read', {
      cause: error,
    });
  }
  throw new DmzError('PKI_ERR_CERT_INVALID', 'expected a CERTIFICATE or PUBLIC KEY PEM block');
}

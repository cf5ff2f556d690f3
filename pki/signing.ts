/**
 * The signing backend: node-forge lays out the to-be-signed structures (TBSCertificate, TBSCertList,
 * CertificationRequestInfo), node:crypto signs their DER. forge's pure-JS RSA would block the event
 * loop ~40 ms per signature; OpenSSL through node:crypto takes ~0.5 ms (RSA-2048) to ~3 ms (RSA-3072).
 */
import { sign } from 'node:crypto';
import forge from 'node-forge';

/**
 * sha256WithRSAEncryption (RFC 4055 section 5, RFC 5280 section 4.1.1.2): the one algorithm the CA
 * and agents sign with. The caller writes this OID into the structure before signing it, since the
 * TBS structure names its own signature algorithm.
 */
export const SIGNATURE_ALGORITHM_OID = '1.2.840.113549.1.1.11';
const SIGNATURE_HASH = 'sha256';

/**
 * Signs the DER encoding of a to-be-signed ASN.1 structure with an RSA private key (PEM) and returns
 * the PKCS#1 v1.5 signature as a forge binary string, ready for the structure's BIT STRING.
 * Synchronous for the rare, small jobs (a CRL, an agent's own CSR).
 */
export function signTbs(tbs: forge.asn1.Asn1, privateKeyPem: string): string {
  return sign(SIGNATURE_HASH, derOf(tbs), privateKeyPem).toString('binary');
}

/**
 * Same signature, computed in libuv's thread pool so that bursts of enrollments and renewals never
 * stall the relay's event loop (and with it, every routed message).
 */
export function signTbsInThreadPool(tbs: forge.asn1.Asn1, privateKeyPem: string): Promise<string> {
  const der = derOf(tbs);
  return new Promise((resolve, reject) => {
    sign(SIGNATURE_HASH, der, privateKeyPem, (error, signature) => {
      if (error === null) resolve(signature.toString('binary'));
      else reject(error);
    });
  });
}

function derOf(tbs: forge.asn1.Asn1): Buffer {
  return Buffer.from(forge.asn1.toDer(tbs).getBytes(), 'binary');
}

/**
 * Certificates as an operator checks them: read from a PEM or DER file, split out of the chain an
 * OPC UA server sends (concatenated DER, Part 6 §6.2.3), and described by the SHA-256 fingerprint
 * and subject a person compares with what the server's own screen shows. node:crypto only: the
 * trust command and the config checks need none of node-opcua for this.
 */
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { DmzError } from '../../../../relay/protocol/errors.ts';
import { fileError } from '../../../../relay/protocol/command-line.ts';

export interface CertificateDescription {
  /** `AB:CD:...`, as `openssl x509 -fingerprint -sha256` prints it. */
  readonly sha256: string;
  /** The SHA-1 thumbprint, lower-case hex: the name OPC UA stores and tools file a certificate under. */
  readonly thumbprint: string;
  readonly subject: string;
  readonly issuer: string;
  readonly validFrom: string;
  readonly validTo: string;
  /** The application URI of its subjectAltName, which OPC UA identifies applications by. */
  readonly applicationUri: string | undefined;
}

const SHA256_HEX_DIGITS = 64;

/** The DER of the first certificate in a PEM or DER file; DmzError naming the file otherwise. */
export function readCertificateFile(path: string): Buffer {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (cause) {
    throw fileError('read the certificate', path, cause);
  }
  try {
    return new X509Certificate(bytes).raw;
  } catch (cause) {
    throw new DmzError('PKI_ERR_CERT_INVALID', `${JSON.stringify(path)} holds no PEM or DER certificate`, {
      cause,
    });
  }
}

export function describeCertificate(der: Buffer): CertificateDescription {
  const certificate = new X509Certificate(der);
  const uri = /(?:^|, )URI:([^,]+)/.exec(certificate.subjectAltName ?? '')?.[1];
  return {
    sha256: certificate.fingerprint256,
    thumbprint: certificate.fingerprint.replaceAll(':', '').toLowerCase(),
    subject: certificate.subject.replaceAll('\n', ', '),
    issuer: certificate.issuer.replaceAll('\n', ', '),
    validFrom: new Date(certificate.validFrom).toISOString(),
    validTo: new Date(certificate.validTo).toISOString(),
    applicationUri: uri,
  };
}

/**
 * The certificates of a chain of concatenated DER, leaf first. Each is an ASN.1 SEQUENCE (tag 0x30)
 * with a definite length (X.690 §8.1.3): short form, or 0x80 + the number of length bytes.
 */
export function splitCertificateChain(chain: Buffer): Buffer[] {
  const certificates: Buffer[] = [];
  let offset = 0;
  while (offset < chain.length) {
    if (chain[offset] !== 0x30 || offset + 2 > chain.length) throw malformedChain();
    const first = chain[offset + 1] ?? 0;
    let length = first;
    let header = 2;
    if (first >= 0x80) {
      const bytes = first & 0x7f;
      if (bytes === 0 || bytes > 4 || offset + 2 + bytes > chain.length) throw malformedChain();
      length = 0;
      for (let index = 0; index < bytes; index++) length = length * 256 + (chain[offset + 2 + index] ?? 0);
      header += bytes;
    }
    const end = offset + header + length;
    if (end > chain.length) throw malformedChain();
    certificates.push(chain.subarray(offset, end));
    offset = end;
  }
  if (certificates.length === 0) throw malformedChain();
  return certificates;
}

/** `ab:cd...` or `ABCD...` as one upper-case form with colons; undefined unless 32 bytes of hex. */
export function normalizeFingerprint(text: string): string | undefined {
  const hex = text
    .replace(/^sha256:/i, '')
    .replace(/[\s:]/g, '')
    .toUpperCase();
  if (!new RegExp(`^[0-9A-F]{${SHA256_HEX_DIGITS}}$`).test(hex)) return undefined;
  return hex.replace(/(..)(?!$)/g, '$1:');
}

function malformedChain(): DmzError {
  return new DmzError('PKI_ERR_CERT_INVALID', 'the server sent a malformed certificate chain');
}

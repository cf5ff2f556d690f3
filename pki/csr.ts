/**
 * PKCS#10 certificate signing requests (RFC 2986): the agent makes one to prove it holds its key;
 * the relay parses untrusted ones defensively. The parser reads no more of the request than it
 * needs: the public key, the proof of possession, and the CN for the log. Requested extensions
 * (RFC 2985 section 5.4.2 extensionRequest) are never even decoded: certificate-template.ts decides
 * what an agent certificate contains.
 */
import { createPublicKey, verify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { DmzError } from '../relay/protocol/errors.ts';
import { MAX_PEM_BYTES } from '../relay/protocol/limits.ts';
import { commonNameAttribute } from './authority.ts';
import { isAcceptableRsaPublicKey } from './keys.ts';
import { SIGNATURE_ALGORITHM_OID, signTbs } from './signing.ts';

/** A CSR is a PEM document of the wire protocol: the same cap (relay/protocol/limits.ts). */
export const MAX_CSR_BYTES = MAX_PEM_BYTES;

export interface ParsedCertificateSigningRequest {
  /** SubjectPublicKeyInfo PEM, re-encoded by node:crypto from the verified key. */
  readonly publicKeyPem: string;
  /** For the log only: an agent's identity comes from its enrollment token, never from here. */
  readonly commonName: string | undefined;
}

const { Class, Type } = forge.asn1;
/** Tag number 0 of a context-specific tag ([0]); forge's types call tag numbers `Type`. */
const TAG_0 = Type.NONE;
const PEM_CSR =
  /^-----BEGIN CERTIFICATE REQUEST-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END CERTIFICATE REQUEST-----\s*$/;
/** Only SHA-2 RSA signatures are a proof of possession we accept (RFC 4055 section 5). */
const SIGNATURE_HASHES: Readonly<Record<string, string>> = {
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
};
const OID_COMMON_NAME = '2.5.4.3';
/** RFC 5280 appendix A: ub-common-name is 64 characters; a longer CN is not logged. */
const MAX_COMMON_NAME_LENGTH = 64;

/** Agent side: a CSR for a key pair made with generateRsaKeyPair, signed through node:crypto. */
export function createCertificateSigningRequest(opts: {
  privateKeyPem: string;
  publicKeyPem: string;
  commonName: string;
}): string {
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.publicKeyFromPem(opts.publicKeyPem);
  csr.setSubject([commonNameAttribute(opts.commonName)]);
  csr.signatureOid = SIGNATURE_ALGORITHM_OID;
  csr.siginfo.algorithmOid = SIGNATURE_ALGORITHM_OID;
  const info = (forge.pki as unknown as ForgeRequestInfoBuilder).getCertificationRequestInfo(csr);
  csr.certificationRequestInfo = info;
  csr.signature = signTbs(info, opts.privateKeyPem);
  return forge.pki.certificationRequestToPem(csr);
}

/**
 * Relay side, in the order STYLE.md asks for: size cap, framing, parse, then checks. Each refusal
 * has its own code; the underlying library error goes to `cause` for the log.
 */
export function parseCertificateSigningRequest(input: string): ParsedCertificateSigningRequest {
  if (Buffer.byteLength(input, 'utf8') > MAX_CSR_BYTES) {
    throw new DmzError('PKI_ERR_CSR_TOO_LARGE', `certificate signing request exceeds ${MAX_CSR_BYTES} bytes`);
  }
  const base64 = PEM_CSR.exec(input.trim())?.[1];
  if (base64 === undefined) {
    throw new DmzError('PKI_ERR_CSR_INVALID', 'expected exactly one CERTIFICATE REQUEST PEM block');
  }
  const request = decodeRequest(Buffer.from(base64.replace(/\s+/g, ''), 'base64'));
  const publicKey = readPublicKey(request.subjectPublicKeyInfo);
  if (!isAcceptableRsaPublicKey(publicKey)) {
    throw new DmzError('PKI_ERR_CSR_KEY', 'key is not RSA of 2048 to 8192 bits with a standard exponent');
  }
  // Proof of possession (RFC 2986 section 3): the requester signed the exact bytes we received.
  const hash = SIGNATURE_HASHES[request.signatureAlgorithm];
  let valid = false;
  try {
    valid = hash !== undefined && verify(hash, request.info, publicKey, request.signature);
  } catch {
    valid = false;
  }
  if (!valid) throw new DmzError('PKI_ERR_CSR_SIGNATURE', 'signature does not verify with the request key');
  return {
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    commonName: request.commonName,
  };
}

interface DecodedRequest {
  readonly info: Buffer;
  readonly subjectPublicKeyInfo: Buffer;
  readonly signatureAlgorithm: string;
  readonly signature: Buffer;
  readonly commonName: string | undefined;
}

/**
 * CertificationRequest ::= SEQUENCE { certificationRequestInfo, signatureAlgorithm, signature }
 * CertificationRequestInfo ::= SEQUENCE { version INTEGER (0), subject Name,
 *   subjectPKInfo SubjectPublicKeyInfo, attributes [0] Attributes }    (RFC 2986 section 4)
 */
function decodeRequest(der: Buffer): DecodedRequest {
  try {
    const binary = der.toString('binary');
    const root = forge.asn1.fromDer(binary, true);
    // forge also accepts BER (indefinite lengths, long-form small lengths); insisting that the
    // input re-encodes to itself means the signature is checked over exactly what was sent.
    if (forge.asn1.toDer(root).getBytes() !== binary) throw new Error('not DER');
    const [info, algorithm, signature] = children(root, 3);
    const [version, subject, spki, attributes] = children(info, 4);
    const [algorithmOid] = children(algorithm);
    const signatureBits = (signature as BitString | undefined)?.bitStringContents;
    if (
      info === undefined ||
      !isPrimitive(version, Type.INTEGER) ||
      version.value !== '\u0000' ||
      subject === undefined ||
      !isConstructed(spki, Class.UNIVERSAL, Type.SEQUENCE) ||
      !isConstructed(attributes, Class.CONTEXT_SPECIFIC, TAG_0) ||
      !isPrimitive(algorithmOid, Type.OID) ||
      !isPrimitive(signature, Type.BITSTRING) ||
      signatureBits?.[0] !== '\u0000'
    ) {
      throw new Error('unexpected CertificationRequest structure');
    }
    return {
      info: toBuffer(forge.asn1.toDer(info).getBytes()),
      subjectPublicKeyInfo: toBuffer(forge.asn1.toDer(spki).getBytes()),
      signatureAlgorithm: forge.asn1.derToOid(algorithmOid.value as string),
      signature: toBuffer(signatureBits.slice(1)),
      commonName: commonNameOf(subject),
    };
  } catch (error) {
    throw new DmzError('PKI_ERR_CSR_INVALID', 'certificate signing request could not be parsed', {
      cause: error,
    });
  }
}

/** Any key node:crypto can read (EC included), so that a wrong key type gets its own code. */
function readPublicKey(spkiDer: Buffer): KeyObject {
  try {
    return createPublicKey({ key: spkiDer, format: 'der', type: 'spki' });
  } catch (error) {
    throw new DmzError('PKI_ERR_CSR_KEY', 'public key could not be read', { cause: error });
  }
}

/** Name ::= SEQUENCE OF SET OF AttributeTypeAndValue (RFC 5280 section 4.1.2.4). */
function commonNameOf(name: forge.asn1.Asn1): string | undefined {
  for (const rdn of children(name)) {
    for (const attribute of children(rdn)) {
      const [type, value] = children(attribute, 2);
      if (!isPrimitive(type, Type.OID) || value === undefined) continue;
      if (forge.asn1.derToOid(type.value as string) !== OID_COMMON_NAME) continue;
      const text = decodeDirectoryString(value);
      return text !== undefined && text.length <= MAX_COMMON_NAME_LENGTH ? text : undefined;
    }
  }
  return undefined;
}

function decodeDirectoryString(value: forge.asn1.Asn1): string | undefined {
  if (value.tagClass !== Class.UNIVERSAL || typeof value.value !== 'string') return undefined;
  if (value.type === Type.UTF8) return toBuffer(value.value).toString('utf8');
  if (value.type === Type.PRINTABLESTRING || value.type === Type.IA5STRING) return value.value;
  return undefined;
}

function children(node: forge.asn1.Asn1 | undefined, count?: number): forge.asn1.Asn1[] {
  if (node === undefined || !node.constructed || !Array.isArray(node.value)) {
    throw new Error('expected a constructed ASN.1 value');
  }
  if (count !== undefined && node.value.length !== count) throw new Error('unexpected element count');
  return node.value;
}

/** A primitive universal value: its `value` is forge's binary string (or, for a BIT STRING whose
 * contents happen to parse as ASN.1, a decoded array: read `bitStringContents` instead). */
function isPrimitive(node: forge.asn1.Asn1 | undefined, type: forge.asn1.Type): node is forge.asn1.Asn1 {
  return node !== undefined && node.tagClass === Class.UNIVERSAL && node.type === type && !node.constructed;
}

function isConstructed(
  node: forge.asn1.Asn1 | undefined,
  tagClass: forge.asn1.Class,
  type: forge.asn1.Type,
): node is forge.asn1.Asn1 {
  return node !== undefined && node.tagClass === tagClass && node.type === type && node.constructed;
}

function toBuffer(binary: string): Buffer {
  return Buffer.from(binary, 'binary');
}

/** forge keeps a primitive BIT STRING's raw contents (leading unused-bits octet included). */
interface BitString extends forge.asn1.Asn1 {
  readonly bitStringContents?: string;
}

/** Present in node-forge, missing from @types/node-forge. */
interface ForgeRequestInfoBuilder {
  getCertificationRequestInfo(csr: forge.pki.CertificateSigningRequest): forge.asn1.Asn1;
}

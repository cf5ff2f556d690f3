/**
 * Reads back the dates and serials of a CRL this CA wrote (crl.ts), so the admin CLI can tell
 * whether the CRL on disk is still current: Node has no CRL parser and OpenSSL may be absent.
 * It does not verify the signature: it reads the relay's own file from its 0700 state directory,
 * and nothing here decides trust (the TLS stack does, with the CRL itself).
 */
import forge from 'node-forge';
import { normalizeSerialHex } from './serial.ts';
import { DmzError } from '../relay/protocol/errors.ts';

export interface CrlSummary {
  readonly thisUpdate: Date;
  readonly nextUpdate: Date;
  /** Lower-case hex without leading zeros, as the store keeps serials. */
  readonly revokedSerials: readonly string[];
}

const { Class, Type } = forge.asn1;

/** RFC 5280 section 5.1: CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm, signatureValue }. */
export function readCrlSummary(pem: string): CrlSummary {
  try {
    const [block] = forge.pem.decode(pem);
    if (block?.type !== 'X509 CRL') throw new Error('expected an X509 CRL PEM block');
    const tbs = children(children(forge.asn1.fromDer(block.body))[0]);
    // TBSCertList: version (optional, present in v2), signature, issuer, thisUpdate, nextUpdate, ...
    const index = (tbs[0]?.type === Type.INTEGER ? 1 : 0) + 2;
    const thisUpdate = readTime(tbs[index]);
    const nextUpdate = readTime(tbs[index + 1]);
    const list = tbs[index + 2];
    // RFC 5280 section 5.1.2.6: the list is absent when nothing is revoked; [0] extensions may follow.
    const entries = list?.tagClass === Class.UNIVERSAL && list.type === Type.SEQUENCE ? children(list) : [];
    const revokedSerials = entries.map((entry) => serialHex(children(entry)[0]));
    return { thisUpdate, nextUpdate, revokedSerials };
  } catch (cause) {
    throw new DmzError('PKI_ERR_CERT_INVALID', 'the CRL file could not be read', { cause });
  }
}

function readTime(node: forge.asn1.Asn1 | undefined): Date {
  if (node?.type === Type.UTCTIME) return forge.asn1.utcTimeToDate(primitive(node));
  if (node?.type === Type.GENERALIZEDTIME) return forge.asn1.generalizedTimeToDate(primitive(node));
  throw new Error('expected a UTCTime or GeneralizedTime');
}

function serialHex(node: forge.asn1.Asn1 | undefined): string {
  if (node?.type !== Type.INTEGER) throw new Error('expected an INTEGER serial');
  return normalizeSerialHex(forge.util.bytesToHex(primitive(node)));
}

function children(node: forge.asn1.Asn1 | undefined): forge.asn1.Asn1[] {
  if (node === undefined || !Array.isArray(node.value)) throw new Error('expected a constructed ASN.1 value');
  return node.value;
}

function primitive(node: forge.asn1.Asn1): string {
  if (typeof node.value !== 'string') throw new Error('expected a primitive ASN.1 value');
  return node.value;
}

/** The DER bytes of a CRL PEM (RFC 7468 section 5: "X509 CRL"), for `openssl crl -inform DER` and peers like it. */
export function crlPemToDer(pem: string): Buffer {
  const [block] = forge.pem.decode(pem);
  if (block?.type !== 'X509 CRL')
    throw new DmzError('PKI_ERR_CERT_INVALID', 'the CRL file could not be read');
  return Buffer.from(block.body, 'binary');
}

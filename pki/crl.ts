/**
 * The certificate revocation list (RFC 5280 section 5), handed to the relay's TLS context so that
 * OpenSSL refuses revoked agents at the handshake. node-forge has no CRL writer, so the structure
 * is laid out here with forge's ASN.1 module and signed through signing.ts.
 */
import forge from 'node-forge';
import type { CertificateAuthority } from './authority.ts';
import { readIssuerDetails } from './authority.ts';
import { normalizeSerialHex } from './serial.ts';
import { SIGNATURE_ALGORITHM_OID, signTbs } from './signing.ts';

export interface RevokedCertificate {
  /** Hex serial as in IssuedCertificate.serialHex (case and leading zeros do not matter). */
  readonly serialHex: string;
  readonly revokedAt: Date;
}

const { Class, Type } = forge.asn1;
/** Tag number 0 of a context-specific tag ([0]); forge's types call tag numbers `Type`. */
const TAG_0 = Type.NONE;
/** RFC 5280 section 5.1.2.1: v2, required because the CRL carries extensions. */
const CRL_VERSION_2 = 1;
/** RFC 5280 sections 5.2.1 and 5.2.3. */
const OID_AUTHORITY_KEY_IDENTIFIER = '2.5.29.35';
const OID_CRL_NUMBER = '2.5.29.20';
/** RFC 5280 sections 4.1.2.2 and 5.2.3: serials and CRL numbers fit in 20 octets. */
const MAX_INTEGER_HEX_DIGITS = 40;
/** RFC 5280 section 5.1.2.4: UTCTime through 2049, GeneralizedTime from 2050 on. */
const FIRST_GENERALIZED_TIME = Date.UTC(2050, 0, 1);

export function buildCrl(opts: {
  ca: CertificateAuthority;
  revoked: ReadonlyArray<RevokedCertificate>;
  crlNumber: number;
  thisUpdate: Date;
  nextUpdate: Date;
}): string {
  if (!Number.isSafeInteger(opts.crlNumber) || opts.crlNumber < 0) {
    throw new RangeError('CRL number must be a non-negative integer');
  }
  if (!(opts.thisUpdate.getTime() < opts.nextUpdate.getTime())) {
    throw new RangeError('CRL nextUpdate must be after thisUpdate');
  }
  const issuer = readIssuerDetails(opts.ca);
  const tbsCertList = sequence([
    integer(CRL_VERSION_2.toString(16)),
    // RFC 5280 section 5.1.2.2: must equal the outer signatureAlgorithm.
    signatureAlgorithm(),
    // RFC 5280 section 5.1.2.3: the CA certificate's subject, byte for byte, so that OpenSSL
    // matches this CRL to the CA (and to the issuer field of the certificates it lists).
    issuer.name,
    time(opts.thisUpdate),
    // RFC 5280 section 5.1.2.5: conforming CRL issuers MUST include nextUpdate.
    time(opts.nextUpdate),
    ...revokedCertificates(opts.revoked),
    // RFC 5280 section 5.1.2.7: crlExtensions [0] EXPLICIT Extensions.
    forge.asn1.create(Class.CONTEXT_SPECIFIC, TAG_0, true, [
      sequence([
        // RFC 5280 section 5.2.1: MUST be included; names the key that signed this CRL.
        extension(
          OID_AUTHORITY_KEY_IDENTIFIER,
          sequence([forge.asn1.create(Class.CONTEXT_SPECIFIC, TAG_0, false, issuer.keyIdentifier)]),
        ),
        // RFC 5280 section 5.2.3: MUST be included, monotonically increasing per CA.
        extension(OID_CRL_NUMBER, integer(opts.crlNumber.toString(16))),
      ]),
    ]),
  ]);
  const signature = signTbs(tbsCertList, opts.ca.keyPem);
  const certificateList = sequence([
    tbsCertList,
    signatureAlgorithm(),
    forge.asn1.create(Class.UNIVERSAL, Type.BITSTRING, false, '\u0000' + signature),
  ]);
  return forge.pem.encode({ type: 'X509 CRL', body: forge.asn1.toDer(certificateList).getBytes() });
}

/**
 * RFC 5280 section 5.1.2.6: when nothing is revoked the list MUST be absent, not empty.
 * Entries are de-duplicated by serial; no entry extensions (a reason code is optional).
 */
function revokedCertificates(revoked: ReadonlyArray<RevokedCertificate>): forge.asn1.Asn1[] {
  const bySerial = new Map<string, Date>();
  for (const entry of revoked) {
    const serial = normalizedHex(entry.serialHex);
    if (serial === '0') throw new RangeError('certificate serial numbers are positive');
    if (!bySerial.has(serial)) bySerial.set(serial, entry.revokedAt);
  }
  if (bySerial.size === 0) return [];
  const entries = [...bySerial].map(([serial, revokedAt]) => sequence([integer(serial), time(revokedAt)]));
  return [sequence(entries)];
}

function signatureAlgorithm(): forge.asn1.Asn1 {
  // RFC 4055 section 5: parameters MUST be NULL for sha256WithRSAEncryption.
  return sequence([
    forge.asn1.create(
      Class.UNIVERSAL,
      Type.OID,
      false,
      forge.asn1.oidToDer(SIGNATURE_ALGORITHM_OID).getBytes(),
    ),
    forge.asn1.create(Class.UNIVERSAL, Type.NULL, false, ''),
  ]);
}

function extension(oid: string, value: forge.asn1.Asn1): forge.asn1.Asn1 {
  // critical is omitted (DER leaves out DEFAULT FALSE); both CRL extensions here are non-critical.
  return sequence([
    forge.asn1.create(Class.UNIVERSAL, Type.OID, false, forge.asn1.oidToDer(oid).getBytes()),
    forge.asn1.create(Class.UNIVERSAL, Type.OCTETSTRING, false, forge.asn1.toDer(value).getBytes()),
  ]);
}

function time(date: Date): forge.asn1.Asn1 {
  if (Number.isNaN(date.getTime())) throw new RangeError('invalid date in CRL');
  return date.getTime() < FIRST_GENERALIZED_TIME
    ? forge.asn1.create(Class.UNIVERSAL, Type.UTCTIME, false, forge.asn1.dateToUtcTime(date))
    : forge.asn1.create(Class.UNIVERSAL, Type.GENERALIZEDTIME, false, forge.asn1.dateToGeneralizedTime(date));
}

/** A non-negative INTEGER from normalised hex (X.690 section 8.3: two's complement, minimal). */
function integer(hex: string): forge.asn1.Asn1 {
  const even = hex.length % 2 === 0 ? hex : `0${hex}`;
  const signed = Number.parseInt(even.slice(0, 2), 16) >= 0x80 ? `00${even}` : even;
  return forge.asn1.create(Class.UNIVERSAL, Type.INTEGER, false, forge.util.hexToBytes(signed));
}

function normalizedHex(hex: string): string {
  if (!/^[0-9a-fA-F]+$/.test(hex)) throw new RangeError('serial number is not hex');
  const digits = normalizeSerialHex(hex);
  if (digits.length > MAX_INTEGER_HEX_DIGITS) throw new RangeError('serial number exceeds 20 octets');
  return digits;
}

function sequence(children: forge.asn1.Asn1[]): forge.asn1.Asn1 {
  return forge.asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, children);
}

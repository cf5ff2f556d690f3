/**
 * The relay's certificate authority: creating it, and signing the certificates that templates
 * describe. A template (certificate-template.ts for agents, issueServerCertificate below for the
 * relay) decides the subject, extensions and validity; the authority adds only what is its own to
 * add (serial, issuer, key identifiers, signature), so no caller can put anything else in.
 */
import { createPublicKey, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import forge from 'node-forge';
import { DmzError } from '../relay/protocol/errors.ts';
import { CA_KEY_BITS, generateRsaKeyPair, isAcceptableRsaPublicKey } from './keys.ts';
import { DAY_MS } from './lifetimes.ts';
import { SIGNATURE_ALGORITHM_OID, signTbsInThreadPool } from './signing.ts';

export interface CertificateAuthority {
  readonly certPem: string;
  /** PKCS#8 PEM. Whoever holds it can mint any agent identity: it never leaves the relay host. */
  readonly keyPem: string;
}

export interface IssuedCertificate {
  readonly certPem: string;
  /** Lower-case hex without leading zeros (Node's X509Certificate.serialNumber is upper case). */
  readonly serialHex: string;
  /** Exactly as encoded in the certificate: whole seconds (RFC 5280 section 4.1.2.5). */
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** What a template decides. Extensions are node-forge extension specs. */
export interface CertificateProfile {
  readonly publicKeyPem: string;
  readonly commonName: string;
  readonly extensions: ReadonlyArray<Record<string, unknown>>;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** The parts of the CA certificate that everything it signs must repeat exactly. */
export interface IssuerDetails {
  /** The CA certificate's subject Name, as parsed from its DER (RFC 5280 section 4.1.2.4). */
  readonly name: forge.asn1.Asn1;
  /** The CA's subjectKeyIdentifier, as a forge binary string (RFC 5280 section 4.2.1.1). */
  readonly keyIdentifier: string;
}

/**
 * Ten years: replacing the root means re-enrolling every agent on site, so it should outlast the
 * appliance; what limits exposure is the agents' short certificate lifetimes, not the root's.
 */
export const CA_LIFETIME_DAYS = 3650;
/**
 * Certificates start one minute in the past so an agent or relay whose clock runs slightly behind
 * the CA's does not reject a certificate it has just been given as "not yet valid".
 */
export const CLOCK_SKEW_BACKDATE_MS = 60_000;
/**
 * RFC 5280 section 4.1.2.2: serials are positive and at most 20 octets; 16 random octets carry
 * 126 bits of entropy (CA/Browser Forum asks for 64) so a serial can never be predicted.
 */
const SERIAL_BYTES = 16;
/** TBSCertificate fields (RFC 5280 section 4.1): version [0], serialNumber, signature, issuer. */
const TBS_ISSUER_INDEX = 3;
const HOSTNAME =
  /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

export async function createCertificateAuthority(opts: {
  commonName: string;
  keyBits?: number;
  lifetimeDays?: number;
  now?: Date;
}): Promise<CertificateAuthority> {
  const lifetimeDays = checkedLifetimeDays(opts.lifetimeDays ?? CA_LIFETIME_DAYS);
  const now = opts.now ?? new Date();
  const keys = await generateRsaKeyPair(opts.keyBits ?? CA_KEY_BITS);
  const { certPem } = await signCertificate(
    {
      publicKeyPem: keys.publicKeyPem,
      commonName: opts.commonName,
      extensions: [
        // RFC 5280 section 4.2.1.9: critical; pathLen 0 because this CA signs only end entities.
        { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
        // RFC 5280 section 4.2.1.3: a CA key signs certificates and CRLs, nothing else.
        { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
      ],
      notBefore: new Date(now.getTime() - CLOCK_SKEW_BACKDATE_MS),
      notAfter: new Date(now.getTime() + lifetimeDays * DAY_MS),
    },
    keys.privateKeyPem,
    undefined,
  );
  return { certPem, keyPem: keys.privateKeyPem };
}

/** The relay's own TLS server certificate, for its agent and enrollment listeners. */
export async function issueServerCertificate(opts: {
  ca: CertificateAuthority;
  publicKeyPem: string;
  dnsNames: readonly string[];
  ipAddresses: readonly string[];
  lifetimeDays: number;
  now?: Date;
}): Promise<IssuedCertificate> {
  const altNames = [
    ...opts.dnsNames.map((dnsName) => ({ type: 2, value: checkedHostname(dnsName) })),
    ...opts.ipAddresses.map((ip) => ({ type: 7, value: ipAddressBytes(ip) })),
  ];
  const commonName = opts.dnsNames[0] ?? opts.ipAddresses[0];
  if (commonName === undefined) {
    throw new DmzError('PKI_ERR_CERT_INVALID', 'a server certificate needs at least one DNS name or IP');
  }
  const lifetimeDays = checkedLifetimeDays(opts.lifetimeDays);
  const now = opts.now ?? new Date();
  return issueCertificate(opts.ca, {
    publicKeyPem: opts.publicKeyPem,
    commonName,
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      // keyEncipherment for TLS 1.2 RSA key exchange (RFC 5246 section 7.4.2), which clients may offer.
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      // RFC 5280 section 4.2.1.12: serverAuth only, so this certificate cannot pass as an agent.
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames },
    ],
    notBefore: new Date(now.getTime() - CLOCK_SKEW_BACKDATE_MS),
    notAfter: new Date(now.getTime() + lifetimeDays * DAY_MS),
  });
}

/** Signs what a template describes with the CA key; the only way a certificate leaves the CA. */
export async function issueCertificate(
  ca: CertificateAuthority,
  profile: CertificateProfile,
): Promise<IssuedCertificate> {
  return signCertificate(profile, ca.keyPem, readIssuerDetails(ca));
}

export function readIssuerDetails(ca: CertificateAuthority): IssuerDetails {
  try {
    const caCert = forge.pki.certificateFromPem(ca.certPem);
    // forge keeps the TBSCertificate as parsed, so this is the CA's own encoding.
    const tbs = childrenOf(caCert.tbsCertificate);
    // The subject follows the issuer and validity (RFC 5280 section 4.1).
    const name = tbs[TBS_ISSUER_INDEX + 2];
    const ski = caCert.getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier?: string } | undefined;
    if (name === undefined || ski?.subjectKeyIdentifier === undefined) throw new Error('incomplete CA');
    return { name, keyIdentifier: forge.util.hexToBytes(ski.subjectKeyIdentifier) };
  } catch (error) {
    throw new DmzError('PKI_ERR_CERT_INVALID', 'CA certificate could not be read', { cause: error });
  }
}

async function signCertificate(
  profile: CertificateProfile,
  signingKeyPem: string,
  issuer: IssuerDetails | undefined,
): Promise<IssuedCertificate> {
  const notBefore = wholeSeconds(profile.notBefore);
  const notAfter = wholeSeconds(profile.notAfter);
  if (!(notBefore.getTime() < notAfter.getTime()) || notAfter.getUTCFullYear() > 9999) {
    throw new DmzError('PKI_ERR_CERT_INVALID', 'certificate validity period is empty or out of range');
  }
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(checkedPublicKeyPem(profile.publicKeyPem));
  const serialHex = randomSerialHex();
  cert.serialNumber = serialHex;
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = notAfter;
  const subject = [commonNameAttribute(profile.commonName)];
  cert.setSubject(subject);
  // Self-signed: issuer = subject. Otherwise replaced below by the CA's own subject DER.
  cert.setIssuer(subject);
  cert.setExtensions([
    ...profile.extensions.map((extension) => ({ ...extension })),
    // RFC 5280 section 4.2.1.2 method (1): SHA-1 of the subjectPublicKey bits.
    { name: 'subjectKeyIdentifier' },
    // RFC 5280 section 4.2.1.1: MUST be present except in self-signed certificates.
    ...(issuer === undefined
      ? []
      : [{ name: 'authorityKeyIdentifier', keyIdentifier: issuer.keyIdentifier }]),
  ]);
  cert.signatureOid = SIGNATURE_ALGORITHM_OID;
  cert.siginfo.algorithmOid = SIGNATURE_ALGORITHM_OID;
  const tbs = (forge.pki as unknown as ForgeTbsBuilder).getTBSCertificate(cert);
  // Copy the issuer Name byte for byte rather than re-encoding it, so name chaining never depends on
  // forge's string-type choices (RFC 5280 section 4.1.2.4 compares issuer and subject names).
  if (issuer !== undefined) childrenOf(tbs)[TBS_ISSUER_INDEX] = issuer.name;
  cert.tbsCertificate = tbs;
  cert.signature = await signTbsInThreadPool(tbs, signingKeyPem);
  return { certPem: forge.pki.certificateToPem(cert), serialHex, notBefore, notAfter };
}

/** A UTF8String CN, the encoding RFC 5280 section 4.1.2.4 asks new certificates to use. */
export function commonNameAttribute(value: string): forge.pki.CertificateField {
  // @types/node-forge types valueTagClass as a tag class, but forge reads it as the universal type.
  // eslint-disable-next-line @typescript-eslint/no-unsafe-enum-assignment
  return { name: 'commonName', value, valueTagClass: forge.asn1.Type.UTF8 as number };
}

function checkedPublicKeyPem(publicKeyPem: string): string {
  // node:crypto would also derive a public key from a private one; a caller handing the CA a
  // private key has a bug worth surfacing, not papering over.
  if (!publicKeyPem.trimStart().startsWith('-----BEGIN PUBLIC KEY-----')) {
    throw new DmzError('PKI_ERR_CSR_KEY', 'expected a PUBLIC KEY PEM block');
  }
  let key;
  try {
    key = createPublicKey({ key: publicKeyPem, format: 'pem' });
  } catch (error) {
    throw new DmzError('PKI_ERR_CSR_KEY', 'public key could not be read', { cause: error });
  }
  if (!isAcceptableRsaPublicKey(key)) {
    throw new DmzError('PKI_ERR_CSR_KEY', 'public key is not RSA of an accepted size and exponent');
  }
  // Re-exported as SPKI: forge then parses a form we produced, whatever the caller passed.
  return key.export({ type: 'spki', format: 'pem' }).toString();
}

function randomSerialHex(): string {
  const serial = randomBytes(SERIAL_BYTES);
  // Clear the top bit (a DER INTEGER with it set is negative) and set the next one, so the
  // first octet is never zero and the INTEGER is minimally encoded (X.690 section 8.3.2).
  serial.writeUInt8((serial.readUInt8(0) & 0x7f) | 0x40, 0);
  return serial.toString('hex');
}

function wholeSeconds(date: Date): Date {
  return new Date(Math.floor(date.getTime() / 1000) * 1000);
}

function checkedLifetimeDays(days: number): number {
  if (!(days > 0)) throw new DmzError('PKI_ERR_CERT_INVALID', 'certificate lifetime must be positive');
  return days;
}

/** Whether a name can go into a server certificate's DNS SAN (checked before any key is made). */
export function isCertifiableHostname(dnsName: string): boolean {
  return HOSTNAME.test(dnsName);
}

/** Whether an address can go into a server certificate's iPAddress SAN. */
export function isCertifiableIpAddress(ip: string): boolean {
  try {
    ipAddressBytes(ip);
    return true;
  } catch {
    return false;
  }
}

function checkedHostname(dnsName: string): string {
  if (!isCertifiableHostname(dnsName)) {
    throw new DmzError('PKI_ERR_CERT_INVALID', 'DNS name is not a lower-case host name');
  }
  return dnsName;
}

/** The 4 or 16 octets of an iPAddress SAN (RFC 5280 section 4.2.1.6). */
function ipAddressBytes(ip: string): string {
  // forge's parser trusts its input: validate first, and refuse the IPv6 forms it misreads
  // (embedded dotted quads, zone ids).
  const version = isIP(ip);
  const parseable = version === 4 || (version === 6 && !/[.%]/.test(ip));
  const bytes = parseable ? (forge.util as unknown as ForgeIpParser).bytesFromIP(ip) : null;
  if (bytes === null || bytes.length !== (version === 4 ? 4 : 16)) {
    throw new DmzError('PKI_ERR_CERT_INVALID', 'IP address is invalid (write IPv6 in hex form)');
  }
  return bytes;
}

/** Present in node-forge, missing from @types/node-forge. */
interface ForgeIpParser {
  bytesFromIP(ip: string): string | null;
}
interface ForgeTbsBuilder {
  getTBSCertificate(cert: forge.pki.Certificate): forge.asn1.Asn1;
}

function childrenOf(node: forge.asn1.Asn1 | undefined): forge.asn1.Asn1[] {
  if (node === undefined || !Array.isArray(node.value)) throw new Error('expected a constructed ASN.1 value');
  return node.value;
}

/**
 * The relay's own TLS server certificate: issued by `dmz-pki init`, reissued by
 * `dmz-pki relay-cert` (new names or addresses, or before it expires) with a new key and from the
 * same CA, so no agent re-enrolls: agents trust the CA, not this certificate.
 *
 * A running relay learns of a reissue from the store, as it learns of revocations: the serial of
 * the certificate in force is written to the store's meta table once both files are in place,
 * and the relay's upkeep (relay/server/pki-upkeep.ts) loads the pair when that serial changes.
 * The two files cannot be replaced in one step; a reader that catches them mid-way, or after a
 * crash between the two renames, finds a key that does not match the certificate and says so
 * (PKI_ERR_RELAY_CERT_MISMATCH) instead of serving a broken pair.
 */
import { X509Certificate } from 'node:crypto';
import { DmzError } from '../relay/protocol/errors.ts';
import { issueServerCertificate, type CertificateAuthority, type IssuedCertificate } from './authority.ts';
import { AGENT_KEY_BITS, generateRsaKeyPair } from './keys.ts';
import { DAY_MS } from './lifetimes.ts';
import { normalizeSerialHex } from './serial.ts';
import { parseStateCertificate, parseStateKey } from './state-damage.ts';
import { readState, replaceState, statePath } from './state-layout.ts';
import type { PkiStore } from './store.ts';

/** A year, renewed with the appliance's maintenance; `status` warns 30 days ahead. */
export const RELAY_CERTIFICATE_DAYS = 365;
/**
 * Never more than the CA's own validity allows (checked at issue); and no more than about two
 * years, as the CA/Browser Forum capped server certificates (825 days): names and addresses of an
 * appliance change, and a certificate that outlives them keeps answering to them.
 */
export const RELAY_CERTIFICATE_MAX_DAYS = 825;
/** The meta key holding the serial of the server certificate in force (see the file comment). */
const RELAY_CERTIFICATE_SERIAL_META = 'relay_certificate_serial';

export interface RelayServerCertificate {
  readonly certPem: string;
  readonly keyPem: string;
  /** Normalized lower-case hex (pki/serial.ts). */
  readonly serialHex: string;
}

export interface RelayCertificateNames {
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
}

/** The pair on disk, checked to belong together. */
export async function readRelayCertificate(stateDir: string): Promise<RelayServerCertificate> {
  const [certPem, keyPem] = await Promise.all([
    readState(stateDir, 'relayCertificate'),
    readState(stateDir, 'relayKey'),
  ]);
  return checkedPair(stateDir, certPem, keyPem);
}

/**
 * The names the certificate in force answers to. A damaged one (PKI_ERR_STATE_DAMAGED) has none to
 * keep: `replacing` its names, a reissue is its remedy; keeping them, the refusal says to give them.
 */
export async function readRelayCertificateNames(
  stateDir: string,
  options: { readonly replacing: boolean },
): Promise<RelayCertificateNames> {
  const certPem = await readState(stateDir, 'relayCertificate');
  try {
    parseStateCertificate(stateDir, 'relayCertificate', certPem);
  } catch (error) {
    if (options.replacing) return { dnsNames: [], ipAddresses: [] };
    throw error;
  }
  return relayCertificateNames(certPem);
}

/** The DNS names and IP addresses a server certificate answers to, in its SAN's order. */
export function relayCertificateNames(certPem: string): RelayCertificateNames {
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  // Node prints the SAN as `DNS:a, IP Address:b`; names we issue never hold a comma or a colon
  // before the value (authority.ts checks them), so the split is exact for our certificates.
  for (const entry of (new X509Certificate(certPem).subjectAltName ?? '').split(', ')) {
    if (entry.startsWith('DNS:')) dnsNames.push(entry.slice('DNS:'.length));
    else if (entry.startsWith('IP Address:'))
      ipAddresses.push(canonicalIpAddress(entry.slice('IP Address:'.length)));
  }
  return { dnsNames, ipAddresses };
}

export interface ReissueOptions extends RelayCertificateNames {
  readonly stateDir: string;
  readonly store: PkiStore;
  readonly ca: CertificateAuthority;
  readonly lifetimeDays: number;
  readonly now?: Date;
  /**
   * Called with the certificate once it is issued, before anything is replaced: the command's
   * audit record (pki/audit-trail.ts) commits there, so no kill leaves a new pair unrecorded.
   */
  readonly record?: (issued: IssuedCertificate) => void;
}

/**
 * Issues a new server certificate for a new key, writes both (each atomically and durably), then
 * tells a running relay through the store. The old pair stays in force until then.
 */
export async function reissueRelayCertificate(options: ReissueOptions): Promise<IssuedCertificate> {
  const { stateDir, store, ca, lifetimeDays } = options;
  const now = options.now ?? new Date();
  if (!Number.isInteger(lifetimeDays) || lifetimeDays < 1 || lifetimeDays > RELAY_CERTIFICATE_MAX_DAYS) {
    throw new DmzError(
      'PKI_ERR_CERT_INVALID',
      `the relay certificate's lifetime must be 1 to ${RELAY_CERTIFICATE_MAX_DAYS} days`,
    );
  }
  const caNotAfter = new Date(new X509Certificate(ca.certPem).validTo);
  if (now.getTime() + lifetimeDays * DAY_MS > caNotAfter.getTime()) {
    // RFC 5280 section 6.1.3 (a)(2): a chain is valid only while every certificate in it is; a
    // relay certificate outliving its CA would fail at the CA's end anyway, without warning.
    throw new DmzError(
      'PKI_ERR_CERT_INVALID',
      `the relay certificate would outlive the CA (valid until ${caNotAfter.toISOString()})`,
    );
  }
  const keys = await generateRsaKeyPair(AGENT_KEY_BITS);
  const issued = await issueServerCertificate({
    ca,
    publicKeyPem: keys.publicKeyPem,
    dnsNames: options.dnsNames,
    ipAddresses: options.ipAddresses,
    lifetimeDays,
    now,
  });
  options.record?.(issued);
  await replaceState(stateDir, 'relayKey', keys.privateKeyPem);
  await replaceState(stateDir, 'relayCertificate', issued.certPem);
  store.setMeta(RELAY_CERTIFICATE_SERIAL_META, normalizeSerialHex(issued.serialHex));
  return issued;
}

/**
 * The serial a reissue last announced; undefined before the first reissue (the pair `init` wrote
 * is in force).
 */
export function announcedRelayCertificateSerial(store: PkiStore): string | undefined {
  return store.getMeta(RELAY_CERTIFICATE_SERIAL_META);
}

/** Each file is checked first: a damaged one (PKI_ERR_STATE_DAMAGED) is no pair caught mid-way. */
function checkedPair(stateDir: string, certPem: string, keyPem: string): RelayServerCertificate {
  const certificate = parseStateCertificate(stateDir, 'relayCertificate', certPem);
  if (!certificate.checkPrivateKey(parseStateKey(stateDir, 'relayKey', keyPem))) {
    throw new DmzError('PKI_ERR_RELAY_CERT_MISMATCH', undefined, {
      hint:
        `${JSON.stringify(statePath(stateDir, 'relayCertificate'))} and its key were caught mid-way ` +
        "through 'dmz-pki relay-cert', or it was interrupted: run it again",
    });
  }
  return { certPem, keyPem, serialHex: normalizeSerialHex(certificate.serialNumber) };
}

/**
 * One spelling per address, to compare and show: Node prints an IPv6 SAN in full
 * (`0:0:0:0:0:0:0:1`), `--ip` takes any form; both become the short form (`::1`).
 */
export function canonicalIpAddress(address: string): string {
  if (!address.includes(':')) return address;
  return new URL(`http://[${address}]/`).hostname.slice(1, -1);
}

/**
 * Publishing revocations: the CRL, built from the store's revoked certificates, that the relay's
 * TLS context enforces. The CRL is reissued long before `nextUpdate`: an expired CRL makes
 * OpenSSL refuse every agent.
 */
import type { CertificateAuthority } from './authority.ts';
import { buildCrl } from './crl.ts';
import { readCrlSummary } from './crl-reader.ts';
import { DEFAULT_CRL_VALIDITY_MS } from './lifetimes.ts';
import { normalizeSerialHex } from './serial.ts';
import { readState, replaceState } from './state-layout.ts';
import type { PkiStore } from './store.ts';

/** Reissue once half the validity has passed, so a missed check or two never lets it lapse. */
const REISSUE_AT_FRACTION_LEFT = 0.5;
const CRL_NEXT_UPDATE_META = 'crl_next_update';

export interface IssuedCrl {
  readonly pem: string;
  /** RFC 5280 section 5.2.3: this CRL's number. */
  readonly crlNumber: number;
  readonly nextUpdate: Date;
  /** How many certificates it lists. */
  readonly revoked: number;
}

export interface WriteCrlOptions {
  readonly stateDir: string;
  readonly store: PkiStore;
  readonly ca: CertificateAuthority;
  readonly now?: Date;
  readonly validityMs?: number;
  /**
   * Called with the CRL once it is signed, before the file is replaced: an audit record (the
   * command's, pki/audit-trail.ts, or the relay's) goes there, so that no kill leaves a CRL
   * reissued without one. A throw leaves the file as it was.
   */
  readonly record?: (crl: IssuedCrl) => void;
}

/** Signs a CRL listing every revoked certificate, then writes it; returns what it wrote. */
export async function writeCrl(options: WriteCrlOptions): Promise<IssuedCrl> {
  const { stateDir, store, ca, now = new Date(), validityMs = DEFAULT_CRL_VALIDITY_MS } = options;
  const nextUpdate = new Date(now.getTime() + validityMs);
  const revoked = store.revokedCertificates();
  const crlNumber = store.nextCrlNumber();
  const pem = buildCrl({ ca, revoked, crlNumber, thisUpdate: now, nextUpdate });
  const crl: IssuedCrl = { pem, crlNumber, nextUpdate, revoked: revoked.length };
  options.record?.(crl);
  await replaceState(stateDir, 'crl', pem);
  // Set only once the file is in place: a kill before leaves the store saying it is due.
  store.setMeta(CRL_NEXT_UPDATE_META, String(nextUpdate.getTime()));
  return crl;
}

/** Every revoked serial, normalized: what the relay checks each new connection against. */
export function revokedSerials(store: PkiStore): Set<string> {
  return new Set(store.revokedCertificates().map((entry) => normalizeSerialHex(entry.serialHex)));
}

export function crlNeedsReissue(
  store: PkiStore,
  now = new Date(),
  validityMs = DEFAULT_CRL_VALIDITY_MS,
): boolean {
  const nextUpdate = Number(store.getMeta(CRL_NEXT_UPDATE_META) ?? 0);
  return nextUpdate - now.getTime() < validityMs * REISSUE_AT_FRACTION_LEFT;
}

/** Serials revoked in the store that the CRL `crlPem` does not list yet. */
export function unpublishedSerials(store: PkiStore, crlPem: string): string[] {
  const listed = new Set(readCrlSummary(crlPem).revokedSerials);
  return store
    .revokedCertificates()
    .map((entry) => normalizeSerialHex(entry.serialHex))
    .filter((serial) => !listed.has(serial));
}

/**
 * Whether the CRL on disk must be reissued before it is served: missing or unreadable, behind the
 * store, expired, or past its reissue point. A relay that fails to start a moment later (its port
 * in use) then leaves a current CRL alone: a restart loop does not sign and fsync every 2 s.
 */
export async function publishedCrlIsStale(
  stateDir: string,
  store: PkiStore,
  now = new Date(),
  validityMs = DEFAULT_CRL_VALIDITY_MS,
): Promise<boolean> {
  let pem: string;
  try {
    pem = await readState(stateDir, 'crl');
    if (readCrlSummary(pem).nextUpdate <= now) return true;
    if (unpublishedSerials(store, pem).length > 0) return true;
  } catch {
    return true;
  }
  return crlNeedsReissue(store, now, validityMs);
}

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

/** Signs and writes a CRL listing every revoked certificate; returns its PEM. */
export async function writeCrl(
  stateDir: string,
  store: PkiStore,
  ca: CertificateAuthority,
  now = new Date(),
  validityMs = DEFAULT_CRL_VALIDITY_MS,
): Promise<string> {
  const nextUpdate = new Date(now.getTime() + validityMs);
  const crlPem = buildCrl({
    ca,
    revoked: store.revokedCertificates(),
    crlNumber: store.nextCrlNumber(),
    thisUpdate: now,
    nextUpdate,
  });
  await replaceState(stateDir, 'crl', crlPem);
  store.setMeta(CRL_NEXT_UPDATE_META, String(nextUpdate.getTime()));
  return crlPem;
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

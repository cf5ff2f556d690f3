/**
 * The relay's certificate authority at run time: opened from the state directory that
 * `dmz-pki init` made, with the CA key decrypted in memory only. It supplies the agent listener's
 * TLS material, certificate renewal, and the enrollment issuer.
 */
import { readFile } from 'node:fs/promises';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { parseDuration } from '../../pki/duration.ts';
import { CertificateIssuer } from '../../pki/issuance.ts';
import { revokedSerials, writeCrl } from '../../pki/revocation.ts';
import { openState, PASSPHRASE_ENV, type PkiState } from '../../pki/state.ts';
import type { CertificateAuthority } from '../../pki/authority.ts';
import { DmzError } from '../protocol/errors.ts';
import type { RelayConfig } from './config.ts';
import type { CertificateRenewer } from './context.ts';
import { loadTlsMaterial, type RelayTlsMaterial } from './tls.ts';

export interface RelayPki {
  readonly state: PkiState;
  readonly ca: CertificateAuthority;
  readonly issuer: CertificateIssuer;
  readonly renewer: CertificateRenewer;
  readonly tls: RelayTlsMaterial;
  /** Every serial revoked so far, also checked at each new connection (a resumed TLS session). */
  readonly revokedSerials: ReadonlySet<string>;
  readonly crlValidityMs: number;
}

export async function openRelayPki(config: RelayConfig): Promise<RelayPki> {
  const state = await openState(config.state);
  try {
    const ca = await state.loadCa(await readPassphrase(config.pki.passphraseFile));
    const crlValidityMs = parseDuration(config.pki.crlValidity) ?? 0;
    // Published from the store at every start: a revocation recorded while the relay was down
    // (`dmz-pki revoke` without the passphrase cannot sign a CRL) must hold from the first
    // handshake, and a stale CRL (past nextUpdate) would make OpenSSL refuse every agent.
    await writeCrl(state.stateDir, state.store, ca, new Date(), crlValidityMs);
    const revoked = revokedSerials(state.store);
    const issuer = new CertificateIssuer(state, ca, parseDuration(config.pki.agentCertificateLifetime) ?? 0);
    return {
      state,
      ca,
      issuer,
      renewer: createRateLimitedRenewer(issuer),
      tls: await loadTlsMaterial(config.state),
      revokedSerials: revoked,
      crlValidityMs,
    };
  } catch (error) {
    state.close();
    throw error;
  }
}

/** As `dmz-pki` reads it: one trailing newline is not part of it, and empty is never meant. */
async function readPassphrase(file: string | undefined): Promise<string | undefined> {
  let passphrase: string | undefined;
  try {
    passphrase =
      file === undefined ? process.env[PASSPHRASE_ENV] : (await readFile(file, 'utf8')).replace(/\r?\n$/, '');
  } catch (cause) {
    throw new DmzError('PKI_ERR_PASSPHRASE', `cannot read the passphrase file ${file ?? ''}`, { cause });
  }
  if (passphrase === '') {
    throw new DmzError('PKI_ERR_PASSPHRASE', `the passphrase (${file ?? PASSPHRASE_ENV}) is empty`);
  }
  return passphrase;
}

/**
 * Renewals per agent name per window. An honest agent renews once at about two thirds of its
 * certificate's lifetime and retries a failure no sooner than 10 s later (agents/renewal.ts); six
 * leave it room for that, while an agent renewing again and again (say over a connection whose
 * certificate it already renewed) cannot make the CA sign, and fsync twice, more often.
 */
const RENEWALS_PER_AGENT = 6;
/**
 * An hour, or the certificate lifetime when that is shorter (1 minute at the least, in tests and
 * demos): an agent that must renew every few minutes still gets its six per lifetime.
 */
const RENEWAL_WINDOW_MAX_MS = 3_600_000;

function createRateLimitedRenewer(issuer: CertificateIssuer): CertificateRenewer {
  const windowMs = Math.min(RENEWAL_WINDOW_MAX_MS, issuer.lifetimeMs);
  const renewals = new RateLimiterMemory({
    points: RENEWALS_PER_AGENT,
    duration: Math.max(1, Math.ceil(windowMs / 1000)),
  });
  return {
    async renew(identity, serialHex, csrPem) {
      try {
        await renewals.consume(identity.name);
      } catch (rejection) {
        // A RateLimiterRes means "limited"; anything else is a bug worth surfacing.
        if (!(rejection instanceof RateLimiterRes)) throw rejection;
        throw new DmzError('RELAY_ERR_RATE_LIMITED', 'too many renewals for this agent');
      }
      const issued = await issuer.renew(identity, serialHex, csrPem);
      return { certificatePem: issued.certPem, caPem: issued.caPem, serialHex: issued.serialHex };
    },
  };
}

/**
 * The two ways an agent gets a certificate: enrollment (a one-time token and a CSR) and renewal
 * (a CSR over its live mTLS connection). Both end in the same template; neither copies anything
 * from the CSR but its public key.
 */
import { DmzError } from '../relay/protocol/errors.ts';
import type { AgentIdentity } from '../relay/protocol/identity.ts';
import type { CertificateAuthority } from './authority.ts';
import { issueAgentCertificate, type IssuedCertificate } from './certificate-template.ts';
import { parseCertificateSigningRequest } from './csr.ts';
import { DEFAULT_AGENT_CERTIFICATE_LIFETIME_MS } from './lifetimes.ts';
import type { PkiState } from './state.ts';
import { verifyEnrollmentToken } from './tokens.ts';

/**
 * A certificate may renew once half its lifetime (notBefore to notAfter) has passed. Agents renew
 * at two thirds, minus at most 5% jitter (agents/renewal.ts), so an honest agent is never refused;
 * an agent renewing back to back, each time minting another valid certificate at the price of a
 * signature and two fsyncs, is.
 */
export const RENEWABLE_AFTER_LIFETIME_FRACTION = 1 / 2;

export interface IssuedAgentCertificate extends IssuedCertificate {
  readonly identity: AgentIdentity;
  readonly caPem: string;
}

export class CertificateIssuer {
  readonly #state: PkiState;
  readonly #ca: CertificateAuthority;
  readonly #lifetimeMs: number;

  constructor(state: PkiState, ca: CertificateAuthority, lifetimeMs = DEFAULT_AGENT_CERTIFICATE_LIFETIME_MS) {
    this.#state = state;
    this.#ca = ca;
    this.#lifetimeMs = lifetimeMs;
  }

  /** The lifetime of the certificates this issuer signs. */
  get lifetimeMs(): number {
    return this.#lifetimeMs;
  }

  /**
   * Redeems a token: signature and expiry first (cheap, no state touched), then the CSR's proof
   * of possession, then the atomic consumption of the token's `jti`: of two parallel redemptions
   * exactly one gets past this point.
   */
  async enroll(token: string, csrPem: string, now = new Date()): Promise<IssuedAgentCertificate> {
    const claims = await verifyEnrollmentToken(token, {
      publicKeyPem: this.#state.tokenVerifyKeyPem,
      issuer: this.#state.tokenIssuer,
      now,
    });
    if (claims.caFingerprint !== this.#state.caFingerprint) {
      throw new DmzError('PKI_ERR_TOKEN_INVALID', 'token was made for another CA');
    }
    const { publicKeyPem } = parseCertificateSigningRequest(csrPem);
    this.#state.store.consumeToken(claims.jti, now);
    const identity: AgentIdentity = {
      trustDomain: this.#state.trustDomain,
      role: claims.role,
      name: claims.name,
    };
    return this.#issue(identity, publicKeyPem, now, { enrolledWithJti: claims.jti });
  }

  /**
   * Renews for the identity of the connection asking, and only while its current certificate is
   * still valid and unrevoked (an expired or revoked agent needs a new token) and past half its
   * lifetime. A revocation committed while signing is caught when the new certificate is recorded.
   */
  async renew(
    identity: AgentIdentity,
    currentSerial: string,
    csrPem: string,
    now = new Date(),
  ): Promise<IssuedAgentCertificate> {
    const [current] = this.#state.store.findCertificates(currentSerial, { now });
    if (
      current === undefined ||
      current.serialHex !== currentSerial ||
      current.name !== identity.name ||
      current.role !== identity.role
    ) {
      throw new DmzError(
        'PKI_ERR_RENEWAL_REFUSED',
        'the presented certificate is not one this CA issued to this agent',
      );
    }
    if (current.status !== 'valid') {
      throw new DmzError('PKI_ERR_RENEWAL_REFUSED', `the presented certificate is ${current.status}`);
    }
    const lifetimeMs = current.notAfter.getTime() - current.notBefore.getTime();
    const renewableAt = current.notBefore.getTime() + lifetimeMs * RENEWABLE_AFTER_LIFETIME_FRACTION;
    if (now.getTime() < renewableAt) {
      throw new DmzError('PKI_ERR_RENEWAL_REFUSED', 'too early: renew after half the certificate lifetime');
    }
    const { publicKeyPem } = parseCertificateSigningRequest(csrPem);
    try {
      return await this.#issue(identity, publicKeyPem, now, { replacesSerial: currentSerial });
    } catch (error) {
      // The store refuses to link a renewal to a predecessor revoked since the check above.
      if (error instanceof DmzError && error.code === 'PKI_ERR_NOT_FOUND') {
        throw new DmzError('PKI_ERR_RENEWAL_REFUSED', 'the certificate was revoked during renewal', {
          cause: error,
        });
      }
      throw error;
    }
  }

  async #issue(
    identity: AgentIdentity,
    publicKeyPem: string,
    now: Date,
    link: { enrolledWithJti?: string; replacesSerial?: string },
  ): Promise<IssuedAgentCertificate> {
    const issued = await issueAgentCertificate({
      ca: this.#ca,
      publicKeyPem,
      identity,
      lifetimeMs: this.#lifetimeMs,
      now,
    });
    this.#state.store.recordCertificate({
      serialHex: issued.serialHex,
      name: identity.name,
      role: identity.role,
      notBefore: issued.notBefore,
      notAfter: issued.notAfter,
      issuedAt: now,
      certPem: issued.certPem,
      ...link,
    });
    return { ...issued, identity, caPem: this.#ca.certPem };
  }
}

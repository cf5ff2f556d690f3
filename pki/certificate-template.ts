/**
 * The agent certificate template: the only shape of certificate an agent ever gets. Everything in
 * it comes from the relay (the identity it authorised, its own lifetimes); from the agent's CSR
 * only the public key is taken, and the caller hands over nothing else, so a CSR asking for
 * CA:TRUE, extra names or serverAuth has no way in (smallstep's certificate templates, same idea).
 */
import { DmzError } from '../relay/protocol/errors.ts';
import { formatSpiffeId, isAgentName, isRole, isTrustDomain } from '../relay/protocol/identity.ts';
import type { AgentIdentity } from '../relay/protocol/identity.ts';
import { CLOCK_SKEW_BACKDATE_MS, issueCertificate } from './authority.ts';
import type { CertificateAuthority, IssuedCertificate } from './authority.ts';

// Also exported here because it is what this template issues; it is defined next to the authority,
// which returns it for every certificate it signs.
export type { IssuedCertificate } from './authority.ts';

/** URI in a GeneralName (RFC 5280 section 4.2.1.6: uniformResourceIdentifier [6]). */
const GENERAL_NAME_URI = 6;

export function issueAgentCertificate(opts: {
  ca: CertificateAuthority;
  publicKeyPem: string;
  identity: AgentIdentity;
  lifetimeMs: number;
  now?: Date;
  /** For tests that need an expired or not-yet-valid certificate. */
  notBefore?: Date;
  notAfter?: Date;
}): Promise<IssuedCertificate> {
  const { identity } = opts;
  // Checked here too, not just at the caller: a name we cannot parse back would mint a
  // certificate that no relay accepts, or worse, one that parses as someone else.
  if (!isTrustDomain(identity.trustDomain) || !isRole(identity.role) || !isAgentName(identity.name)) {
    return Promise.reject(new DmzError('PKI_ERR_CERT_INVALID', 'agent identity is invalid'));
  }
  if (!(opts.lifetimeMs > 0)) {
    return Promise.reject(new DmzError('PKI_ERR_CERT_INVALID', 'certificate lifetime must be positive'));
  }
  const now = opts.now ?? new Date();
  return issueCertificate(opts.ca, {
    publicKeyPem: opts.publicKeyPem,
    // The CN is for people reading logs; relays read the identity from the URI SAN only.
    commonName: identity.name,
    extensions: [
      // RFC 5280 section 4.2.1.9: an end entity; critical so no verifier can overlook it.
      { name: 'basicConstraints', cA: false, critical: true },
      // RFC 5280 section 4.2.1.3: a TLS client key only signs the handshake (CertificateVerify).
      { name: 'keyUsage', digitalSignature: true, critical: true },
      // RFC 5280 section 4.2.1.12: clientAuth only, so an agent cannot serve TLS as anyone.
      { name: 'extKeyUsage', clientAuth: true },
      // RFC 5280 section 4.2.1.6: the identity, as the one and only SAN.
      { name: 'subjectAltName', altNames: [{ type: GENERAL_NAME_URI, value: formatSpiffeId(identity) }] },
    ],
    notBefore: opts.notBefore ?? new Date(now.getTime() - CLOCK_SKEW_BACKDATE_MS),
    notAfter: opts.notAfter ?? new Date(now.getTime() + opts.lifetimeMs),
  });
}

/**
 * Agent identity: `spiffe://<trust-domain>/agent/<role>/<name>`, carried as the only URI SAN of
 * an agent certificate. Identity comes from the verified certificate only, never from a frame.
 * See https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md (section 2).
 */
import { DmzError } from './errors.ts';
import { MAX_AGENT_NAME_LENGTH } from './limits.ts';

export const ROLES = { ot: 'ot', it: 'it' } as const;
export type Role = (typeof ROLES)[keyof typeof ROLES];

export interface AgentIdentity {
  readonly trustDomain: string;
  readonly role: Role;
  readonly name: string;
}

/** A DNS label (RFC 1035 section 2.3.1), lower case: it doubles as the agent's topic namespace. */
const AGENT_NAME = new RegExp(`^[a-z0-9](?:[a-z0-9-]{0,${MAX_AGENT_NAME_LENGTH - 2}}[a-z0-9])?$`);
/** SPIFFE trust domain: lower-case letters, digits, dots, dashes, underscores (SPIFFE-ID 2.1). */
const TRUST_DOMAIN = /^[a-z0-9._-]{1,253}$/;

export function isAgentName(value: string): boolean {
  return AGENT_NAME.test(value);
}

export function isTrustDomain(value: string): boolean {
  return TRUST_DOMAIN.test(value) && !value.startsWith('.') && !value.endsWith('.') && !value.includes('..');
}

export function isRole(value: string): value is Role {
  return value === ROLES.ot || value === ROLES.it;
}

export function formatSpiffeId(identity: AgentIdentity): string {
  return `spiffe://${identity.trustDomain}/agent/${identity.role}/${identity.name}`;
}

/** Parses a SPIFFE ID strictly; anything else (extra path, query, upper case, port) is refused. */
export function parseSpiffeId(uri: string): AgentIdentity {
  const match = /^spiffe:\/\/([^/]+)\/agent\/([^/]+)\/([^/]+)$/.exec(uri);
  const [, trustDomain, role, name] = match ?? [];
  if (
    trustDomain === undefined ||
    role === undefined ||
    name === undefined ||
    !isTrustDomain(trustDomain) ||
    !isRole(role) ||
    !isAgentName(name)
  ) {
    throw new DmzError('RELAY_ERR_IDENTITY');
  }
  return { trustDomain, role, name };
}

/**
 * Reads the identity from Node's `X509Certificate.subjectAltName` string. Exactly one SAN entry,
 * a URI, is accepted: certificates from our own template carry nothing else, so anything more is a
 * certificate we did not issue the way we issue them.
 */
export function identityFromSubjectAltName(
  subjectAltName: string | undefined,
  trustDomain: string,
): AgentIdentity {
  // Node quotes entries containing separators (CVE-2021-44532); a quote can never be ours.
  if (subjectAltName === undefined || subjectAltName.includes('"') || subjectAltName.includes(',')) {
    throw new DmzError('RELAY_ERR_IDENTITY');
  }
  if (!subjectAltName.startsWith('URI:')) throw new DmzError('RELAY_ERR_IDENTITY');
  const identity = parseSpiffeId(subjectAltName.slice('URI:'.length));
  if (identity.trustDomain !== trustDomain) throw new DmzError('RELAY_ERR_IDENTITY');
  return identity;
}

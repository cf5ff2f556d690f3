/**
 * How long what the CA signs for agents stays valid: the defaults the relay's configuration starts
 * from (relay/server/config.ts) and the bounds an operator may set, named once for the schema and
 * for the code that signs (issuance.ts, revocation.ts).
 */
export const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
const MINUTE_MS = 60_000;

/** Seven days: short enough that a stolen key ages out soon, long enough to ride out a weekend. */
export const DEFAULT_AGENT_CERTIFICATE_LIFETIME_MS = 7 * DAY_MS;
/** A minute at least (renewal needs time to happen); 90 days at most (short-lived is the point). */
export const AGENT_CERTIFICATE_LIFETIME_BOUNDS = { min: MINUTE_MS, max: 90 * DAY_MS } as const;

/** A week: long enough to ride out a relay outage over a weekend, short for a stale copy. */
export const DEFAULT_CRL_VALIDITY_MS = 7 * DAY_MS;
/** An hour at least (reissue must not be constant); 30 days at most (revocations must reach caches). */
export const CRL_VALIDITY_BOUNDS = { min: HOUR_MS, max: 30 * DAY_MS } as const;

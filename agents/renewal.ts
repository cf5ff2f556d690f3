/**
 * An agent renews its certificate over its live mTLS connection at about two thirds of the
 * certificate's lifetime, with a fresh key each time, so a stolen key ages out with its certificate.
 */
import { X509Certificate, createPublicKey } from 'node:crypto';
import { createCertificateSigningRequest } from '../pki/csr.ts';
import { AGENT_KEY_BITS, generateRsaKeyPair } from '../pki/keys.ts';
import { DmzError } from '../relay/protocol/errors.ts';
import { readEnrolledIdentity, storeCredentials, type AgentCredentialSet } from './credentials.ts';
import type { RelayLink } from './link/relay-link.ts';

/** Two thirds in: a third of the lifetime is left to retry if the relay is unreachable. */
export const RENEW_AT_FRACTION = 2 / 3;
/** Plus or minus 5% of the lifetime, so agents enrolled together do not all renew together. */
export const RENEWAL_JITTER_FRACTION = 0.05;

export interface RenewedCredentials {
  readonly keyPem: string;
  readonly certPem: string;
  readonly caPem: string;
}

/** Milliseconds from `now` until this certificate should be renewed (0 when already due). */
export function renewalDelayMs(
  certPem: string,
  now = Date.now(),
  random: () => number = Math.random,
): number {
  const certificate = new X509Certificate(certPem);
  const notBefore = Date.parse(certificate.validFrom);
  const lifetime = Date.parse(certificate.validTo) - notBefore;
  const jitter = (random() * 2 - 1) * RENEWAL_JITTER_FRACTION * lifetime;
  return Math.max(0, notBefore + lifetime * RENEW_AT_FRACTION + jitter - now);
}

/**
 * Generates a fresh key, has the relay certify it, and checks the result is for that key and
 * from the CA the agent already trusts: a renewal can never switch the agent to another CA.
 */
export async function renewOverConnection(
  client: RelayLink,
  commonName: string,
  trustedCaPem: string,
): Promise<RenewedCredentials> {
  const keys = await generateRsaKeyPair(AGENT_KEY_BITS);
  const csr = createCertificateSigningRequest({ ...keys, commonName });
  const { certificate } = await client.renew(csr);
  const issued = new X509Certificate(certificate);
  const ours = createPublicKey(keys.publicKeyPem);
  const trusted = new X509Certificate(trustedCaPem);
  if (!issued.publicKey.equals(ours) || !issued.checkIssued(trusted) || !issued.verify(trusted.publicKey)) {
    throw new DmzError(
      'PKI_ERR_CERT_INVALID',
      'the relay returned a certificate that is not for our key or not from our CA',
    );
  }
  return { keyPem: keys.privateKeyPem, certPem: certificate, caPem: trustedCaPem };
}

/** After a failed attempt: try again soon, but not so often that a refusing relay is hammered. */
const RETRY_MIN_MS = 10_000;
const RETRY_MAX_MS = 5 * 60_000;
/** setTimeout's ceiling (about 24.8 days); longer waits are taken in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface RenewalScheduleOptions {
  readonly client: RelayLink;
  /** The credential directory; renewed credentials replace the old ones there, crash-safely. */
  readonly dir: string;
  readonly credentials: AgentCredentialSet;
  /** Called with the stored new credentials: reconnect with them when convenient. */
  readonly onRenewed: (credentials: AgentCredentialSet) => void;
  readonly onError?: (error: unknown) => void;
  readonly now?: () => number;
  readonly random?: () => number;
}

/**
 * Renews once, when due, over the given connection; retries on failure until the certificate
 * expires (after which only a new token helps). Returns a function that cancels it.
 */
export function scheduleRenewal(options: RenewalScheduleOptions): () => void {
  const now = options.now ?? Date.now;
  let timer: NodeJS.Timeout | undefined;
  let cancelled = false;
  const expiresAt = Date.parse(new X509Certificate(options.credentials.certPem).validTo);
  const wait = (ms: number, then: () => void) => {
    timer = setTimeout(
      () => (ms > MAX_TIMER_MS ? wait(ms - MAX_TIMER_MS, then) : then()),
      Math.min(ms, MAX_TIMER_MS),
    );
    timer.unref();
  };
  const attempt = () => {
    if (cancelled) return;
    const { identity, caPem } = options.credentials;
    renewOverConnection(options.client, identity.name, caPem)
      .then(async (renewed) => {
        const credentials = { ...renewed, identity: readEnrolledIdentity(renewed) };
        await storeCredentials(options.dir, credentials);
        if (!cancelled) options.onRenewed(credentials);
      })
      .catch((error: unknown) => {
        options.onError?.(error);
        const left = expiresAt - now();
        if (!cancelled && left > 0) wait(Math.min(RETRY_MAX_MS, Math.max(RETRY_MIN_MS, left / 30)), attempt);
      });
  };
  wait(renewalDelayMs(options.credentials.certPem, now(), options.random), attempt);
  return () => {
    cancelled = true;
    clearTimeout(timer);
  };
}

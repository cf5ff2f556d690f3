/**
 * `dmz-agent enroll`: turns a one-time token into credentials on this host. The key is made here
 * and never leaves it; the token goes only to an endpoint that has proven it speaks for the CA
 * pinned in the token; what comes back is checked against that CA and our key before it is stored.
 */
import { rm } from 'node:fs/promises';
import { createCertificateSigningRequest } from '../pki/csr.ts';
import { spkiFingerprint } from '../pki/fingerprint.ts';
import { AGENT_KEY_BITS, generateRsaKeyPair } from '../pki/keys.ts';
import { readEnrollmentTokenUnverified, type EnrollmentClaims } from '../pki/tokens.ts';
import { firstMissingDirectory, removeOnInterrupt } from '../relay/protocol/command-line.ts';
import type { EnrollmentResponse } from '../relay/protocol/enrollment.ts';
import { DmzError } from '../relay/protocol/errors.ts';
import { connectWithPinnedCa, endpointOf, type PinnedConnection } from './ca-pinning.ts';
import {
  prepareCredentialDirectory,
  readEnrolledIdentity,
  storeCredentials,
  type AgentCredentialSet,
  type EnrolledIdentity,
} from './credentials.ts';
import { exchangeEnrollment } from './enrollment-exchange.ts';

/** Per URL, for the TLS handshake and again for the answer: generous for a plant's WAN link. */
export const DEFAULT_ENROLLMENT_TIMEOUT_MS = 30_000;

/**
 * A relay in `auto` mode opens its enrollment port within a second of a token being created, so a
 * refused connection is retried for a while: nothing was sent, the token is intact.
 */
const REFUSED_RETRY_WINDOW_MS = 10_000;
const REFUSED_RETRY_INTERVAL_MS = 250;

export interface EnrollAgentOptions {
  readonly token: string;
  /** The credential directory (created 0700 if missing). */
  readonly dir: string;
  /** Replace the identity already enrolled in `dir`. */
  readonly force?: boolean;
  readonly timeoutMs?: number;
}

export interface EnrollmentOutcome {
  readonly identity: EnrolledIdentity;
  readonly dir: string;
  /** The token URL that answered. */
  readonly url: string;
}

/**
 * Clocks of agent hosts drift; a token is judged expired here only past this margin, and otherwise
 * left to the relay, whose clock decides.
 */
const CLOCK_SKEW_MS = 60_000;

export async function enrollAgent(options: EnrollAgentOptions): Promise<EnrollmentOutcome> {
  const { token, dir } = options;
  const timeoutMs = options.timeoutMs ?? DEFAULT_ENROLLMENT_TIMEOUT_MS;
  const claims = readEnrollmentTokenUnverified(token);
  refuseExpired(claims, Date.now());
  // A failed or interrupted enrollment leaves nothing behind: what this run created goes with it.
  // Watched from before the directory is made, so a Ctrl-C at any moment is covered.
  const willCreate = firstMissingDirectory(dir);
  const keepOnInterrupt = removeOnInterrupt(() => (willCreate === undefined ? [] : [willCreate]));
  let created: string | undefined;
  try {
    created = await prepareCredentialDirectory(dir, { force: options.force ?? false });
  } catch (error) {
    keepOnInterrupt();
    throw error;
  }
  try {
    return await enrollInto(dir, token, claims, timeoutMs);
  } catch (error) {
    if (created !== undefined) await rm(created, { recursive: true, force: true });
    throw error;
  } finally {
    keepOnInterrupt();
  }
}

async function enrollInto(
  dir: string,
  token: string,
  claims: EnrollmentClaims,
  timeoutMs: number,
): Promise<EnrollmentOutcome> {
  const keys = await generateRsaKeyPair(AGENT_KEY_BITS);
  const csr = createCertificateSigningRequest({ ...keys, commonName: claims.name });

  const failures: DmzError[] = [];
  for (const url of claims.urls) {
    const endpoint = endpointOf(new URL(url));
    let connection: PinnedConnection;
    try {
      connection = await connectRetryingRefusals(() =>
        connectWithPinnedCa({ endpoint, caFingerprint: claims.caFingerprint, timeoutMs }),
      );
    } catch (error) {
      // Nothing was sent there, so the token is intact: the next URL may reach the relay.
      failures.push(explainRefusal(asDmzError(error), url, claims));
      continue;
    }
    // From here the token is with a relay of the pinned CA: its answer is final, whatever it is.
    const answer = await exchangeEnrollment({ connection, endpoint, body: { token, csr }, timeoutMs });
    const credentials = checkAnswer(answer, keys.privateKeyPem, claims);
    await storeCredentials(dir, credentials);
    return { identity: credentials.identity, dir, url };
  }
  throw mostTelling(failures);
}

function refuseExpired(claims: EnrollmentClaims, now: number): void {
  if (now <= claims.expiresAt.getTime() + CLOCK_SKEW_MS) return;
  throw new DmzError(
    'PKI_ERR_TOKEN_EXPIRED',
    `the enrollment token for ${claims.name} expired at ${claims.expiresAt.toISOString()}`,
    {
      hint: `ask the relay's operator for a new one (dmz-pki token create --name ${claims.name} --role ${claims.role})`,
    },
  );
}

function isRefused(error: unknown): boolean {
  return (
    error instanceof DmzError && (error.cause as NodeJS.ErrnoException | undefined)?.code === 'ECONNREFUSED'
  );
}

/**
 * A relay in `auto` mode listens on its enrollment port only while a token is outstanding, so a
 * refused connection most often means this token is no longer outstanding: used, revoked or
 * expired. That is what the operator must hear, not `ECONNREFUSED`.
 */
function explainRefusal(error: DmzError, url: string, claims: EnrollmentClaims): DmzError {
  if (!isRefused(error)) return error;
  const expired = Date.now() > claims.expiresAt.getTime();
  const likely = expired
    ? `the token expired at ${claims.expiresAt.toISOString()}`
    : 'the token was probably used or revoked already, or the relay is not running';
  return new DmzError(
    'AGENT_ERR_ENROLLMENT_PORT_CLOSED',
    `nothing listens at ${url}: a relay opens its enrollment port only while a token is outstanding, so ${likely}`,
    {
      cause: error,
      hint: `ask the relay's operator to check 'dmz-pki token list --all' and create a new token (dmz-pki token create --name ${claims.name} --role ${claims.role})`,
    },
  );
}

async function connectRetryingRefusals(connect: () => Promise<PinnedConnection>): Promise<PinnedConnection> {
  const deadline = Date.now() + REFUSED_RETRY_WINDOW_MS;
  for (;;) {
    try {
      return await connect();
    } catch (error) {
      if (!isRefused(error) || Date.now() + REFUSED_RETRY_INTERVAL_MS > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, REFUSED_RETRY_INTERVAL_MS));
    }
  }
}

/** The answer must be the pinned CA, and a certificate from it for our key and the token's identity. */
function checkAnswer(
  answer: EnrollmentResponse,
  keyPem: string,
  claims: EnrollmentClaims,
): AgentCredentialSet {
  if (spkiFingerprint(answer.ca) !== claims.caFingerprint) {
    throw new DmzError(
      'PKI_ERR_CA_MISMATCH',
      'the relay returned a CA certificate other than the pinned one',
    );
  }
  const identity = readEnrolledIdentity({ keyPem, certPem: answer.certificate, caPem: answer.ca });
  if (identity.name !== claims.name || identity.role !== claims.role) {
    throw new DmzError('PKI_ERR_CERT_INVALID', 'the relay issued a certificate for another identity');
  }
  return { keyPem, certPem: answer.certificate, caPem: answer.ca, identity };
}

/** A CA mismatch anywhere outranks an unreachable URL: it may be an attack, and the user must see it. */
function mostTelling(failures: readonly DmzError[]): DmzError {
  const mismatch = failures.find((failure) => failure.code === 'PKI_ERR_CA_MISMATCH');
  if (mismatch !== undefined) return mismatch;
  const [first] = failures;
  if (first !== undefined && failures.every((failure) => failure.code === first.code)) {
    // One story (every port closed, say): told once, with its remedy.
    return failures.length === 1
      ? first
      : new DmzError(first.code, `${first.message} (and at the other ${failures.length - 1} URL(s))`, {
          cause: first,
          ...(first.hint === undefined ? {} : { hint: first.hint }),
        });
  }
  return new DmzError(
    'PKI_ERR_ENROLLMENT_FAILED',
    `no enrollment URL could be reached: ${failures.map((failure) => failure.message).join('; ')}`,
  );
}

function asDmzError(error: unknown): DmzError {
  return error instanceof DmzError ? error : new DmzError('PKI_ERR_ENROLLMENT_FAILED', String(error));
}

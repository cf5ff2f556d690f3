/**
 * One-time enrollment tokens: JWTs (RFC 7519) the relay signs and verifies itself, following the
 * JWT Best Current Practices (RFC 8725). The token carries what a new agent needs to enroll: its
 * name and role, where to enroll, and the CA's SPKI fingerprint to pin on first contact (as kubeadm
 * and step-ca do). One-time use is enforced by the store (`consumeToken`), not here.
 */
import { generateKeyPair, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { SignJWT, decodeJwt, decodeProtectedHeader, errors, importPKCS8, importSPKI, jwtVerify } from 'jose';
import type { JWTPayload } from 'jose';
import { DmzError } from '../relay/protocol/errors.ts';
import { MAX_TOKEN_BYTES } from '../relay/protocol/limits.ts';
import { isAgentName, isRole } from '../relay/protocol/identity.ts';
import {
  DEFAULT_TOKEN_TTL_SECONDS,
  isEnrollmentUrl,
  MAX_TOKEN_TTL_SECONDS,
  MAX_TOKEN_URLS,
  MIN_TOKEN_TTL_SECONDS,
} from './token-rules.ts';
import type { Role } from '../relay/protocol/identity.ts';

/** RFC 8725 section 3.1: the verifier allows exactly one algorithm; Ed25519 has no weak parameters. */
const TOKEN_ALGORITHM = 'EdDSA';
/** RFC 8725 section 3.11: explicit typing, so no other JWT the relay signs can pass as this one. */
export const ENROLLMENT_TOKEN_TYPE = 'dmz-enroll+jwt';
/** RFC 8725 section 3.9: a token minted for enrollment must not be accepted anywhere else. */
export const ENROLLMENT_TOKEN_AUDIENCE = 'dmz-relay-enrollment';

export {
  DEFAULT_TOKEN_TTL_SECONDS,
  isEnrollmentUrl,
  MAX_TOKEN_TTL_SECONDS,
  MAX_TOKEN_URLS,
  MIN_TOKEN_TTL_SECONDS,
};

/** Clock skew accepted for `iat` in the future; `exp` gets none (the token is short anyway). */
const IAT_FUTURE_TOLERANCE_SECONDS = 60;
/** Tokens arrive on an unauthenticated port: capped before any parsing (relay/protocol/limits.ts). */
export const MAX_TOKEN_LENGTH = MAX_TOKEN_BYTES;
/** 128 random bits (RFC 7519 section 4.1.7: collision-free `jti`), base64url without padding. */
const JTI_BYTES = 16;
const JTI_PATTERN = /^[A-Za-z0-9_-]{22}$/;
/** SHA-256 of the CA certificate's SubjectPublicKeyInfo, lower-case hex. */
const CA_FINGERPRINT_PATTERN = /^sha256:[0-9a-f]{64}$/;

export interface EnrollmentClaims {
  jti: string;
  name: string;
  role: Role;
  urls: string[];
  caFingerprint: string;
  expiresAt: Date;
}

export interface CreateEnrollmentTokenOptions {
  signingKeyPem: string;
  issuer: string;
  name: string;
  role: Role;
  ttlSeconds: number;
  urls: readonly string[];
  caFingerprint: string;
  now?: Date;
}

export interface VerifyEnrollmentTokenOptions {
  publicKeyPem: string;
  issuer: string;
  now?: Date;
}

const generateKeyPairAsync = promisify(generateKeyPair);

export async function generateTokenSigningKey(): Promise<{ privateKeyPem: string; publicKeyPem: string }> {
  const { privateKey, publicKey } = await generateKeyPairAsync('ed25519', {
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  return { privateKeyPem: privateKey, publicKeyPem: publicKey };
}

export async function createEnrollmentToken(
  opts: CreateEnrollmentTokenOptions,
): Promise<{ token: string; jti: string; expiresAt: Date }> {
  const { issuer, name, role, ttlSeconds, urls, caFingerprint } = opts;
  if (typeof issuer !== 'string' || issuer.length === 0) invalid('issuer must be a non-empty string');
  if (!isValidTtl(ttlSeconds)) {
    invalid(`ttl must be an integer from ${MIN_TOKEN_TTL_SECONDS} to ${MAX_TOKEN_TTL_SECONDS} seconds`);
  }
  const issuedAt = Math.floor((opts.now ?? new Date()).getTime() / 1000);
  const jti = randomBytes(JTI_BYTES).toString('base64url');
  const payload = {
    iss: issuer,
    aud: ENROLLMENT_TOKEN_AUDIENCE,
    jti,
    iat: issuedAt,
    exp: issuedAt + ttlSeconds,
    sub: name,
    role,
    urls: [...urls],
    ca: caFingerprint,
  };
  // Run what we are about to sign through the same check the verifier uses: one definition.
  const claims = parseEnrollmentClaims(payload);
  const key = await importPKCS8(opts.signingKeyPem, TOKEN_ALGORITHM);
  const token = await new SignJWT(payload)
    .setProtectedHeader({ alg: TOKEN_ALGORITHM, typ: ENROLLMENT_TOKEN_TYPE })
    .sign(key);
  return { token, jti, expiresAt: claims.expiresAt };
}

/** Relay side: the token must be ours, unexpired and well formed. It is not yet consumed. */
export async function verifyEnrollmentToken(
  token: string,
  opts: VerifyEnrollmentTokenOptions,
): Promise<EnrollmentClaims> {
  checkTokenSize(token);
  // A bad key is the relay's own configuration fault, not the token's: let it surface as such.
  const key = await importSPKI(opts.publicKeyPem, TOKEN_ALGORITHM);
  const now = opts.now ?? new Date();
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, key, {
      algorithms: [TOKEN_ALGORITHM],
      typ: ENROLLMENT_TOKEN_TYPE,
      issuer: opts.issuer,
      audience: ENROLLMENT_TOKEN_AUDIENCE,
      requiredClaims: ['jti', 'iat', 'exp', 'sub'],
      currentDate: now,
      clockTolerance: 0,
    }));
  } catch (err) {
    // Bad signature, malformed, wrong typ/iss/aud, alg none or HS256: all plain "invalid" to the peer.
    if (err instanceof errors.JWTExpired) {
      throw new DmzError('PKI_ERR_TOKEN_EXPIRED', undefined, { cause: err });
    }
    if (err instanceof errors.JOSEError) {
      throw new DmzError('PKI_ERR_TOKEN_INVALID', undefined, { cause: err });
    }
    throw err;
  }
  const claims = parseEnrollmentClaims(payload);
  // RFC 7519 section 4.1.6: jose checks `iat` only with maxTokenAge; a token from the future
  // beyond clock skew was not minted by a sane clock of ours.
  if (typeof payload.iat === 'number' && payload.iat > now.getTime() / 1000 + IAT_FUTURE_TOLERANCE_SECONDS) {
    invalid('token is issued in the future');
  }
  return claims;
}

/**
 * Agent side. The agent does not hold the relay's public key, so it cannot check the signature;
 * it takes the CA fingerprint from here and lets the TLS handshake against that pinned CA prove
 * the relay. The relay verifies the token fully when the agent presents it.
 */
export function readEnrollmentTokenUnverified(token: string): EnrollmentClaims {
  checkTokenSize(token);
  let payload: JWTPayload;
  try {
    const header = decodeProtectedHeader(token);
    if (header.alg !== TOKEN_ALGORITHM || header.typ !== ENROLLMENT_TOKEN_TYPE) {
      invalid('token header is not that of an enrollment token');
    }
    payload = decodeJwt(token);
  } catch (err) {
    if (err instanceof DmzError) throw err;
    throw new DmzError('PKI_ERR_TOKEN_INVALID', undefined, { cause: err });
  }
  return parseEnrollmentClaims(payload);
}

/** The one claim-shape check, shared by issuer, relay and agent (RFC 8725 section 3.10: validate all input). */
function parseEnrollmentClaims(payload: JWTPayload): EnrollmentClaims {
  const { jti, sub: name, aud, iat, exp, role, urls, ca } = payload;
  if (aud !== ENROLLMENT_TOKEN_AUDIENCE) invalid('audience is not enrollment');
  if (typeof payload.iss !== 'string' || payload.iss.length === 0) invalid('issuer is missing');
  if (typeof jti !== 'string' || !JTI_PATTERN.test(jti)) invalid('jti is not 128 bits of base64url');
  if (typeof name !== 'string' || !isAgentName(name)) invalid('name is not a valid agent name');
  if (typeof role !== 'string' || !isRole(role)) invalid('role must be ot or it');
  if (typeof ca !== 'string' || !CA_FINGERPRINT_PATTERN.test(ca)) invalid('ca must be sha256:<64 hex>');
  if (typeof iat !== 'number' || typeof exp !== 'number' || !Number.isSafeInteger(iat)) {
    invalid('iat and exp must be integers');
  }
  // The relay never signs a token outside the TTL bounds, so one that claims to be is not ours.
  if (!isValidTtl(exp - iat)) invalid('token lifetime is out of bounds');
  if (!Array.isArray(urls) || urls.length === 0 || urls.length > MAX_TOKEN_URLS) {
    invalid(`urls must list 1 to ${MAX_TOKEN_URLS} enrollment URLs`);
  }
  const checkedUrls = urls.map((url: unknown) => {
    if (typeof url !== 'string' || !isEnrollmentUrl(url)) invalid('urls must be wss:// or https:// URLs');
    return url;
  });
  return { jti, name, role, urls: checkedUrls, caFingerprint: ca, expiresAt: new Date(exp * 1000) };
}

function isValidTtl(seconds: number): boolean {
  return (
    Number.isSafeInteger(seconds) && seconds >= MIN_TOKEN_TTL_SECONDS && seconds <= MAX_TOKEN_TTL_SECONDS
  );
}

/** Enrollment only ever happens over TLS; credentials or fragments in the URL have no meaning here. */
function checkTokenSize(token: string): void {
  if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
    invalid('token is empty or too long');
  }
}

/** The public message stays generic (STYLE point 4); the reason is kept as the cause for the log. */
function invalid(reason: string): never {
  throw new DmzError('PKI_ERR_TOKEN_INVALID', undefined, { cause: new Error(reason) });
}

/**
 * The API's optional authentication: a bearer token, or HTTP basic (RFC 6750, RFC 7617), its
 * secret read once at start from a file open to the agent's user alone (0600). Credentials are
 * compared as SHA-256 digests with timingSafeEqual, so neither their content nor their length
 * shows in the time an answer takes. Every route needs them but the dashboard's static files (no
 * plant data), so the page can load and ask for the token. An address that fails
 * MAX_FAILED_ATTEMPTS_PER_MINUTE times is refused for a minute without its credentials being
 * looked at, so a password is not guessed at the speed of a loopback socket.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { quote } from '../../../relay/protocol/command-line.ts';
import { DmzError } from '../../../relay/protocol/errors.ts';
import { refuseOpenPermissions } from '../../../relay/protocol/file-permissions.ts';
import type { ItApiAuth } from './api-config.ts';

/** A bearer token shorter than this is guessable; `openssl rand -hex 32` makes 64 characters. */
export const MIN_TOKEN_LENGTH = 16;
/** A basic-auth password shorter than this is guessable. */
export const MIN_PASSWORD_LENGTH = 8;
const REALM = 'dmz-agent';
/**
 * Failed attempts one address may make in a minute before it is refused for the next: far above
 * a person mistyping or a dashboard holding an old token (one poll every 2 s), far below guessing
 * (an 8-character password of lower-case letters alone is 2 * 10^11 tries: 13,000 years at 30 a
 * minute, against minutes at the thousands per second a loopback socket answers).
 */
export const MAX_FAILED_ATTEMPTS_PER_MINUTE = 30;
const ATTEMPT_WINDOW_SECONDS = 60;

export interface ApiAuthenticator {
  /** The `WWW-Authenticate` challenge a refusal carries. */
  readonly challenge: string;
  /** True when the Authorization header carries the configured credentials. */
  accepts(header: string | undefined): boolean;
}

export async function loadAuthenticator(auth: ItApiAuth): Promise<ApiAuthenticator> {
  if (auth.kind === 'bearer') {
    const expected = digest(
      await readSecret(auth.tokenFile, 'it.api.auth.bearerTokenFile', MIN_TOKEN_LENGTH),
    );
    return {
      challenge: `Bearer realm="${REALM}"`,
      accepts: (header) => {
        const match = /^Bearer ([\x21-\x7e]+)$/i.exec(header ?? '');
        return match !== null && timingSafeEqual(digest(match[1] as string), expected);
      },
    };
  }
  const password = await readSecret(auth.passwordFile, 'it.api.auth.basic.passwordFile', MIN_PASSWORD_LENGTH);
  const expected = digest(`${auth.user}:${password}`);
  return {
    challenge: `Basic realm="${REALM}", charset="UTF-8"`,
    accepts: (header) => {
      const match = /^Basic ([A-Za-z0-9+/]+={0,2})$/i.exec(header ?? '');
      return (
        match !== null &&
        timingSafeEqual(digest(Buffer.from(match[1] as string, 'base64').toString('utf8')), expected)
      );
    },
  };
}

export type AuthVerdict =
  { readonly allowed: true } | { readonly allowed: false; readonly retryAfterMs: number | undefined };

/**
 * Checks a request's credentials against `authenticator`, counting failures per source address:
 * `retryAfterMs` is set when the address is refused for failing too often (the credentials it
 * sent then are not checked, so a right guess looks the same as a wrong one).
 */
export function createAuthGate(
  authenticator: ApiAuthenticator,
): (address: string, header: string | undefined) => Promise<AuthVerdict> {
  const failures = new RateLimiterMemory({
    points: MAX_FAILED_ATTEMPTS_PER_MINUTE,
    duration: ATTEMPT_WINDOW_SECONDS,
    blockDuration: ATTEMPT_WINDOW_SECONDS,
  });
  return async (address, header) => {
    const record = await failures.get(address);
    if (record !== null && record.consumedPoints > MAX_FAILED_ATTEMPTS_PER_MINUTE) {
      return { allowed: false, retryAfterMs: record.msBeforeNext };
    }
    if (authenticator.accepts(header)) return { allowed: true };
    try {
      await failures.consume(address);
      return { allowed: false, retryAfterMs: undefined };
    } catch (rejection) {
      // A RateLimiterRes means "limited"; anything else is a bug worth surfacing.
      if (!(rejection instanceof RateLimiterRes)) throw rejection;
      return { allowed: false, retryAfterMs: rejection.msBeforeNext };
    }
  };
}

/** The file's first line; refuses a file others may read, and a secret too short to be one. */
async function readSecret(file: string, key: string, minLength: number): Promise<string> {
  let text: string;
  try {
    refuseOpenPermissions(file, { code: 'AGENT_ERR_API_SECRET' });
    text = await readFile(file, 'utf8');
  } catch (cause) {
    if (cause instanceof DmzError) throw cause;
    throw new DmzError('AGENT_ERR_API_SECRET', `${key}: ${quote(file)} cannot be read`, {
      cause,
      hint: `create it 0600, owned by the agent's user (${key})`,
    });
  }
  const secret = text.split(/\r?\n/, 1)[0] ?? '';
  if (secret.length < minLength) {
    throw new DmzError(
      'AGENT_ERR_API_SECRET',
      `${key}: ${quote(file)} holds fewer than ${minLength} characters`,
      {
        hint: 'make one with: openssl rand -hex 32',
      },
    );
  }
  return secret;
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

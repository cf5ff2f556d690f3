/**
 * The API's authentication: who a request comes from, by a bearer token or HTTP basic (RFC 6750,
 * RFC 7617) against the users of it.api (api-config.ts), their secrets read once at start from
 * files open to the agent's user alone (0600). Tokens are compared as SHA-256 digests with
 * timingSafeEqual against every user's, so neither a token's content, its length nor whose it is
 * shows in the time an answer takes; passwords are checked against their scrypt hash
 * (password-hash.ts; the shared `auth.basic` password is hashed when it is loaded), an unknown
 * name against a hash of no one, so a name's existence does not show either. Every route needs
 * credentials but the dashboard's static files (no plant data), so the page can load and ask for
 * them. An address (an IPv6 one by its /64) that fails
 * MAX_FAILED_ATTEMPTS_PER_MINUTE times, checks still running counted, is refused for a minute
 * without its credentials being looked at, so a password is not guessed at the speed of a
 * loopback socket.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { quote } from '../../../relay/protocol/command-line.ts';
import { DmzError } from '../../../relay/protocol/errors.ts';
import { refuseOpenPermissions } from '../../../relay/protocol/file-permissions.ts';
import type { ApiRole, ItApiUser, SecretFile } from './api-config.ts';
import {
  newPasswordHash,
  parsePasswordHash,
  PASSWORD_HASH_COST,
  verifyPassword,
  type PasswordHash,
} from './password-hash.ts';

/** A bearer token shorter than this is guessable; `openssl rand -hex 32` makes 64 characters. */
export const MIN_TOKEN_LENGTH = 16;
/** A basic-auth password shorter than this is guessable. */
export const MIN_PASSWORD_LENGTH = 8;
/** A credential file is one line: a token, a password or a hash of ~100 characters; 4 KiB is ample. */
const MAX_SECRET_FILE_BYTES = 4096;
const REALM = 'dmz-agent';
/**
 * Failed attempts one address may make in a minute before it is refused for the next: far above
 * a person mistyping or a dashboard holding an old token (one poll every 2 s), far below guessing
 * (an 8-character password of lower-case letters alone is 2 * 10^11 tries: 13,000 years at 30 a
 * minute, against minutes at the thousands per second a loopback socket answers).
 */
export const MAX_FAILED_ATTEMPTS_PER_MINUTE = 30;
const ATTEMPT_WINDOW_SECONDS = 60;
/**
 * scrypt checks run at once: each takes one of libuv's four threads for ~0.25 s, which the agent's
 * file system work (sinks, cursors, the audit) shares; two leave it two.
 */
const MAX_CONCURRENT_PASSWORD_CHECKS = 2;

/** Who sent a request: a configured user, or anyone when the API has no users (loopback only). */
export interface ApiCaller {
  /** undefined when the API has no users. */
  readonly user: string | undefined;
  readonly role: ApiRole;
}

/**
 * Without users, whoever reaches the loopback listener: any process of any local user, `nobody`
 * too. It may read what the agent consumed, never write: a write to the plant must name the user
 * who asked for it (IEC 62443-3-3 SR 1.1, SR 2.1), and no one is named here.
 */
export const ANONYMOUS: ApiCaller = { user: undefined, role: 'read' };

export interface ApiAuthenticator {
  /**
   * The `WWW-Authenticate` challenges a refusal carries (RFC 9110 section 11.6.1). `fromScript`:
   * the request says it is a page's script (`X-Requested-With: XMLHttpRequest`, as the dashboard
   * sends): its Basic challenge is spelt `x-Basic`, because a browser that sees `Basic` holds the
   * script's request for a sign-in dialog of its own (headless, for ever) instead of letting the
   * page show its form.
   */
  challenge(fromScript: boolean): string;
  /** The schemes the users' credentials take, for the OpenAPI document. */
  readonly schemes: readonly ('bearer' | 'basic')[];
  /** The user whose credentials the Authorization header carries, if any. */
  identify(header: string | undefined): Promise<ApiCaller | undefined>;
}

interface PasswordUser {
  readonly caller: ApiCaller;
  /**
   * A scrypt hash: the user's, or, for the shared `auth.basic` whose file holds the password
   * itself, one made when it is loaded, so guessing it costs an scrypt check as a user's does.
   */
  readonly check: PasswordHash;
  /** The keyed digest of the password last found right: checked again without scrypt. */
  verified: Buffer | undefined;
}

export async function loadAuthenticator(users: readonly ItApiUser[]): Promise<ApiAuthenticator> {
  const tokens: { digest: Buffer; caller: ApiCaller; key: string }[] = [];
  const passwords = new Map<string, PasswordUser>();
  for (const user of users) {
    const caller: ApiCaller = { user: user.name, role: user.role };
    if (user.token !== undefined) {
      const digest = sha256(await readSecret(user.token, MIN_TOKEN_LENGTH));
      const twin = tokens.find((known) => timingSafeEqual(known.digest, digest));
      // Two users with one token could not be told apart: whose write would the audit name?
      if (twin !== undefined) {
        throw new DmzError(
          'AGENT_ERR_API_SECRET',
          `${user.token.key}: ${quote(user.token.file)} holds the token of ${twin.key}`,
          { hint: 'give every user a token of its own: openssl rand -hex 32' },
        );
      }
      tokens.push({ digest, caller, key: user.token.key });
    }
    if (user.password !== undefined) {
      const check = user.password.hashed
        ? await readPasswordHash(user.password)
        : await newPasswordHash(await readSecret(user.password, MIN_PASSWORD_LENGTH));
      passwords.set(user.name, { caller, check, verified: undefined });
    }
  }
  const schemes = [
    ...(tokens.length > 0 ? (['bearer'] as const) : []),
    ...(passwords.size > 0 ? (['basic'] as const) : []),
  ];
  const challenges = (basic: string) =>
    schemes
      .map((scheme) =>
        scheme === 'bearer' ? `Bearer realm="${REALM}"` : `${basic} realm="${REALM}", charset="UTF-8"`,
      )
      .join(', ');
  const checkPassword = passwordChecker();
  return {
    challenge: (fromScript) => challenges(fromScript ? 'x-Basic' : 'Basic'),
    schemes,
    identify: async (header) => {
      const bearer = /^Bearer ([\x21-\x7e]+)$/i.exec(header ?? '');
      if (bearer !== null) {
        const digest = sha256(bearer[1] as string);
        // Every user's token is compared, the match kept: no early exit to time.
        let found: ApiCaller | undefined;
        for (const token of tokens) if (timingSafeEqual(token.digest, digest)) found = token.caller;
        return found;
      }
      const basic = /^Basic ([A-Za-z0-9+/]+={0,2})$/i.exec(header ?? '');
      if (basic === null) return undefined;
      const decoded = Buffer.from(basic[1] as string, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0) return undefined;
      return checkPassword(passwords.get(decoded.slice(0, colon)), decoded.slice(colon + 1));
    },
  };
}

/**
 * Checks a password against its user's hash, at most MAX_CONCURRENT_PASSWORD_CHECKS at once; a
 * password found right before is recognised by its keyed digest (HMAC under a key of this process
 * alone), so a dashboard's poll every 2 s costs one scrypt per process, not one per request.
 */
function passwordChecker(): (
  user: PasswordUser | undefined,
  password: string,
) => Promise<ApiCaller | undefined> {
  const digestKey = randomBytes(32);
  // What an unknown name is checked against: the default cost, matching no password.
  const nobody: PasswordHash = { ...PASSWORD_HASH_COST, salt: randomBytes(16), hash: randomBytes(32) };
  const waiting: (() => void)[] = [];
  let running = 0;
  return async (user, password) => {
    const digest = createHmac('sha256', digestKey).update(password, 'utf8').digest();
    if (user !== undefined && user.verified !== undefined && timingSafeEqual(user.verified, digest))
      return user.caller;
    const check = user?.check ?? nobody;
    if (running >= MAX_CONCURRENT_PASSWORD_CHECKS) await new Promise<void>((go) => waiting.push(go));
    running++;
    try {
      // An unknown name costs the same scrypt as a known one.
      const right = await verifyPassword(check, password);
      if (!right || user === undefined) return undefined;
      user.verified = digest;
      return user.caller;
    } finally {
      running--;
      waiting.shift()?.();
    }
  };
}

export type AuthVerdict =
  | { readonly allowed: true; readonly caller: ApiCaller }
  | { readonly allowed: false; readonly retryAfterMs: number | undefined };

export interface AuthGate {
  /** The users' credentials checked now. */
  readonly authenticator: ApiAuthenticator;
  /** Users reloaded (SIGHUP): their credentials from now on, the failure counts per address kept. */
  replace(authenticator: ApiAuthenticator): void;
  /**
   * Checks a request's credentials, counting failures per source address: `retryAfterMs` is set
   * when the address is refused for failing too often (the credentials it sent then are not
   * checked, so a right guess looks the same as a wrong one).
   */
  check(address: string, header: string | undefined): Promise<AuthVerdict>;
}

export function createAuthGate(initial: ApiAuthenticator): AuthGate {
  const failures = new RateLimiterMemory({
    points: MAX_FAILED_ATTEMPTS_PER_MINUTE,
    duration: ATTEMPT_WINDOW_SECONDS,
    blockDuration: ATTEMPT_WINDOW_SECONDS,
  });
  /** Checks under way, by address: one entry per address with a check running, no more. */
  const checking = new Map<string, number>();
  let authenticator = initial;
  return {
    get authenticator() {
      return authenticator;
    },
    replace(next) {
      authenticator = next;
    },
    async check(peer, header) {
      const address = attemptSource(peer);
      const record = await failures.get(address);
      // Checks still running count as failures to come: a password check waits for scrypt, and
      // without this an address could send hundreds at once, all let in before the first fails.
      const inFlight = checking.get(address) ?? 0;
      if ((record?.consumedPoints ?? 0) + inFlight > MAX_FAILED_ATTEMPTS_PER_MINUTE) {
        return { allowed: false, retryAfterMs: record?.msBeforeNext ?? ATTEMPT_WINDOW_SECONDS * 1000 };
      }
      checking.set(address, inFlight + 1);
      let caller: ApiCaller | undefined;
      try {
        caller = await authenticator.identify(header);
      } finally {
        const left = (checking.get(address) ?? 1) - 1;
        if (left === 0) checking.delete(address);
        else checking.set(address, left);
      }
      if (caller !== undefined) return { allowed: true, caller };
      try {
        await failures.consume(address);
        return { allowed: false, retryAfterMs: undefined };
      } catch (rejection) {
        // A RateLimiterRes means "limited"; anything else is a bug worth surfacing.
        if (!(rejection instanceof RateLimiterRes)) throw rejection;
        return { allowed: false, retryAfterMs: rejection.msBeforeNext };
      }
    },
  };
}

/**
 * Whose attempts an address's are: an IPv4 address itself (also as IPv6 maps it), an IPv6 address
 * by its /64, the smallest network a host is given (RFC 6177), which holds 2^64 addresses it may
 * send from (privacy addresses, RFC 8981): counted one by one, each would start at zero.
 */
function attemptSource(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped !== null) return mapped[1] as string;
  if (isIP(address) !== 6) return address;
  const [head = '', tail] = address.replace(/%.*$/, '').split('::');
  const groups = (part: string | undefined) => (part === undefined || part === '' ? [] : part.split(':'));
  const known = [...groups(head), ...(tail === undefined ? [] : ['::']), ...groups(tail)];
  const filled = known.flatMap((group) =>
    group === '::' ? Array<string>(9 - known.length).fill('0') : [group],
  );
  return `${filled
    .slice(0, 4)
    .map((group) => Number.parseInt(group, 16).toString(16))
    .join(':')}::/64`;
}

/** The file's first line; refuses a file others may read, and a secret too short to be one. */
async function readSecret(secret: SecretFile, minLength: number): Promise<string> {
  const line = await readFirstLine(secret);
  if (line.length < minLength) {
    throw new DmzError(
      'AGENT_ERR_API_SECRET',
      `${secret.key}: ${quote(secret.file)} holds fewer than ${minLength} characters`,
      { hint: 'make one with: openssl rand -hex 32' },
    );
  }
  return line;
}

async function readPasswordHash(secret: SecretFile): Promise<PasswordHash> {
  const parsed = parsePasswordHash(await readFirstLine(secret));
  if (typeof parsed === 'string') {
    throw new DmzError('AGENT_ERR_API_SECRET', `${secret.key}: ${quote(secret.file)} ${parsed}`, {
      hint: 'make it with: dmz-agent api user add NAME --role read|write --password-hash-file FILE',
    });
  }
  return parsed;
}

/**
 * Opened without blocking and read only if it is a regular file, at most MAX_SECRET_FILE_BYTES of
 * it: a FIFO put in its place would hold the start (or a SIGHUP's reload) for ever, a device or a
 * huge file would be read into memory whole. A symbolic link is followed (a Kubernetes secret
 * volume is made of them); the file it leads to is what must be private.
 */
async function readFirstLine({ file, key }: SecretFile): Promise<string> {
  let text: string;
  try {
    const handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
    try {
      const info = await handle.stat();
      if (!info.isFile())
        throw new DmzError('AGENT_ERR_API_SECRET', `${quote(file)} is not a regular file`, {
          hint: `write the secret to a file of its own (${key})`,
        });
      if (info.size > MAX_SECRET_FILE_BYTES)
        throw new DmzError(
          'AGENT_ERR_API_SECRET',
          `${quote(file)} holds more than ${MAX_SECRET_FILE_BYTES} bytes: not a secret file`,
          { hint: `check ${key}` },
        );
      refuseOpenPermissions(file, { code: 'AGENT_ERR_API_SECRET' });
      const { buffer, bytesRead } = await handle.read(
        Buffer.alloc(MAX_SECRET_FILE_BYTES),
        0,
        MAX_SECRET_FILE_BYTES,
        0,
      );
      text = buffer.subarray(0, bytesRead).toString('utf8');
    } finally {
      await handle.close();
    }
  } catch (cause) {
    if (cause instanceof DmzError)
      throw new DmzError(cause.code, `${key}: ${cause.message}`, { cause, ...hintOf(cause) });
    throw new DmzError('AGENT_ERR_API_SECRET', `${key}: ${quote(file)} cannot be read`, {
      cause,
      hint: `create it 0600, owned by the agent's user (${key})`,
    });
  }
  return text.split(/\r?\n/, 1)[0] ?? '';
}

function hintOf(error: DmzError): { hint?: string } {
  return error.hint === undefined ? {} : { hint: error.hint };
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

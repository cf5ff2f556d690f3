/**
 * API users' passwords at rest: scrypt (RFC 7914) hashes, one per file, in the PHC string format
 * (`$scrypt$ln=15,r=8,p=3$<salt>$<hash>`, base64 without padding, as passlib writes scrypt), so
 * the agent never holds a password it could lose to a reader of its files. `dmz-agent api user add`
 * makes them (api-user-command.ts); the agent reads and checks them (users.ts).
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/**
 * N = 2^15, r = 8, p = 3: one of OWASP's equivalent minimum scrypt settings (the same work as
 * 2^17, r = 8, p = 1) at 32 MiB a check instead of 128 MiB; about 0.25 s here. A correct password
 * is checked once per process (users.ts remembers it), so only a guess pays it every time.
 */
export const PASSWORD_HASH_COST = { log2N: 15, r: 8, p: 3 } as const;
/**
 * What a hash file may ask for: its parameters are read before any check, so a file cannot make
 * the agent allocate more than 2^17 x 8 x 128 B = 128 MiB, nor be weaker than Node's default cost.
 */
const COST_BOUNDS = { log2N: { min: 14, max: 17 }, r: { min: 8, max: 8 }, p: { min: 1, max: 8 } } as const;
const MAX_MEMORY = 2 ** COST_BOUNDS.log2N.max * COST_BOUNDS.r.max * 128 + 2 ** 20;
const SALT_BYTES = 16;
const HASH_BYTES = 32;
const FORMAT =
  /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]{22,88})\$([A-Za-z0-9+/]{43,88})$/;

export interface PasswordHash {
  readonly log2N: number;
  readonly r: number;
  readonly p: number;
  readonly salt: Buffer;
  readonly hash: Buffer;
}

/** A new hash of `password` with a fresh random salt, at the default cost. */
export async function newPasswordHash(password: string): Promise<PasswordHash> {
  const salt = randomBytes(SALT_BYTES);
  const hash = await derive(password, { ...PASSWORD_HASH_COST, salt, hash: Buffer.alloc(HASH_BYTES) });
  return { ...PASSWORD_HASH_COST, salt, hash };
}

/** A new hash of `password`, as the one line of text a hash file holds. */
export async function hashPassword(password: string): Promise<string> {
  const { log2N, r, p, salt, hash } = await newPasswordHash(password);
  return `$scrypt$ln=${log2N},r=${r},p=${p}$${unpadded(salt)}$${unpadded(hash)}`;
}

/** The hash in `text`, or why it is not one. */
export function parsePasswordHash(text: string): PasswordHash | string {
  const match = FORMAT.exec(text);
  if (match === null) return 'holds no scrypt hash ($scrypt$ln=..,r=..,p=..$salt$hash)';
  const [log2N, r, p] = [match[1], match[2], match[3]].map(Number) as [number, number, number];
  for (const [name, value, bounds] of [
    ['ln', log2N, COST_BOUNDS.log2N],
    ['r', r, COST_BOUNDS.r],
    ['p', p, COST_BOUNDS.p],
  ] as const) {
    if (value < bounds.min || value > bounds.max)
      return `asks for scrypt ${name}=${value}, outside ${bounds.min} .. ${bounds.max}`;
  }
  const salt = Buffer.from(match[4] as string, 'base64');
  const hash = Buffer.from(match[5] as string, 'base64');
  if (salt.length < SALT_BYTES) return `has a salt of ${salt.length} bytes, fewer than ${SALT_BYTES}`;
  if (hash.length < HASH_BYTES) return `has a hash of ${hash.length} bytes, fewer than ${HASH_BYTES}`;
  return { log2N, r, p, salt, hash };
}

/** Whether `password` is the one `stored` was made from; in constant time once derived. */
export async function verifyPassword(stored: PasswordHash, password: string): Promise<boolean> {
  return timingSafeEqual(await derive(password, stored), stored.hash);
}

function derive(password: string, cost: PasswordHash): Promise<Buffer> {
  const options: ScryptOptions = { N: 2 ** cost.log2N, r: cost.r, p: cost.p, maxmem: MAX_MEMORY };
  // NFC: the same password typed on two systems may arrive composed or decomposed. In libuv's
  // thread pool, not on the event loop, which serves the plant's data meanwhile.
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), cost.salt, cost.hash.length, options, (error, key) =>
      error === null ? resolve(key) : reject(error),
    );
  });
}

function unpadded(bytes: Buffer): string {
  return bytes.toString('base64').replace(/=+$/, '');
}

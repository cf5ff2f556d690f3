/**
 * The agent port's TLS 1.3 session tickets (RFC 8446 section 4.6.1). A reconnecting agent that
 * offers one resumes with a PSK and a fresh ECDHE (section 4.2.9, psk_dhe_ke), which skips the
 * relay's signature and the verification of the agent's certificate chain: a relay restart with
 * thousands of agents is back at the pace of resumed handshakes, not full ones.
 *
 * What the keys can do decides how they are kept. A ticket seals the session its full handshake
 * established, the client certificate included; whoever holds the keys can seal a session for any
 * certificate they have seen and resume as that agent without its private key. So the keys are
 * never written down. They are derived (HKDF, RFC 5869) from the CA key, which can mint any
 * identity anyway, a random salt and the set of revoked serials; the state file holds the salt and
 * its birth, so keys survive a restart and tickets issued before it still resume after it. The
 * file is worthless without the CA key (and as safe at rest as the CA key's passphrase makes it).
 *
 * Keys change (a new salt: every ticket issued so far is useless) at every TLS reload, which is
 * every revocation, CRL reissue and change of CA material, and when older than
 * TICKET_KEYS_MAX_AGE_MS. The revoked set is part of the derivation, so a revocation recorded
 * while the relay was down changes the keys at its next start, whatever the file says. Identity
 * and revocation are still checked on every connection, resumed or not (peer-identity.ts).
 */
import { createHash, createPrivateKey, hkdfSync, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { replaceFileDurably } from '../protocol/durable-files.ts';
import { fileError, quote } from '../protocol/command-line.ts';
import { refuseOpenPermissions } from '../protocol/file-permissions.ts';

/** In the relay's state directory, next to the CA it depends on; 0600 like every state file. */
export const TICKET_KEY_FILE = 'session-tickets.json';
/**
 * A day. Keys this old are replaced, so stolen keys (or a salt with a stolen CA key) stop working
 * within a day even if nothing is revoked; a longer life would let more of a long-connected fleet
 * resume after a restart (a resumed connection gets no new ticket from Node's server).
 */
export const TICKET_KEYS_MAX_AGE_MS = 24 * 3600 * 1000;
/**
 * How long one full handshake's verification may be stretched by resumption, in seconds (Node's
 * `sessionTimeout`, the ticket_lifetime the relay announces; RFC 8446 allows at most 7 days). No
 * longer than the keys that seal the tickets live. Node's default of 300 s would end resumption
 * five minutes after an agent connected, long before the relay restarts.
 */
export const TICKET_LIFETIME_SECONDS = TICKET_KEYS_MAX_AGE_MS / 1000;
/** Node's ticket keys: 16 bytes of key name, 16 of HMAC key, 16 of AES key. */
const TICKET_KEY_BYTES = 48;
const SALT_BYTES = 32;
/** As much secret as HKDF-SHA-256 can use in one go (its hash length). */
const EPHEMERAL_SECRET_BYTES = 32;
const FILE_VERSION = 1;
/** A birth this far in the future is a damaged file (or one set to dodge rotation), not clock skew. */
const MAX_CLOCK_SKEW_MS = 5 * 60 * 1000;
/** Domain separation: these bytes derive ticket keys and nothing else (RFC 5869 section 3.2). */
const DERIVATION_LABEL = 'dmz-relay agent-port session ticket keys v1';

export type TicketKeyRotation = 'tls reload' | 'age';

export interface OpenTicketKeysOptions {
  readonly stateDir: string;
  /** The CA's private key (PEM, decrypted), the secret the keys are derived from. */
  readonly caKeyPem: string;
  readonly revokedSerials: ReadonlySet<string>;
  readonly log: Logger;
  readonly now?: () => number;
}

interface Epoch {
  readonly salt: Buffer;
  readonly createdAt: number;
}

export class SessionTicketKeys {
  readonly #secret: Buffer;
  readonly #path: string | undefined;
  readonly #log: Logger | undefined;
  readonly #now: () => number;
  #epoch: Epoch;
  #keys: Buffer;
  #writes: Promise<void> = Promise.resolve();
  /** Keys made at open() that are not on disk yet. */
  #unsaved = false;
  #ageTimer: NodeJS.Timeout | undefined;
  #byAge:
    { readonly revokedSerials: ReadonlySet<string>; readonly apply: (keys: Buffer) => void } | undefined;

  private constructor(
    secret: Buffer,
    epoch: Epoch,
    revokedSerials: ReadonlySet<string>,
    where: { path: string; log: Logger } | undefined,
    now: () => number,
  ) {
    this.#secret = secret;
    this.#epoch = epoch;
    this.#path = where?.path;
    this.#log = where?.log;
    this.#now = now;
    this.#keys = deriveTicketKeys(secret, epoch.salt, revokedSerials);
  }

  /**
   * The keys of the relay's state directory: the file's salt while it is younger than
   * TICKET_KEYS_MAX_AGE_MS, else (and when there is none) a new one, which save() writes once the
   * relay is up (a start that fails leaves the state directory as it was). A damaged file is
   * replaced with a warning: it holds no authority, and new keys only ever admit less (every agent
   * makes one full handshake), while refusing to start would take the plant's only path between
   * its networks down over a cache. A file that cannot be read, or written, fails the start.
   */
  static async open(options: OpenTicketKeysOptions): Promise<SessionTicketKeys> {
    const now = options.now ?? Date.now;
    const path = join(options.stateDir, TICKET_KEY_FILE);
    const secret = createPrivateKey(options.caKeyPem).export({ type: 'pkcs8', format: 'der' });
    const stored = await readEpoch(path, now(), options.log);
    const fresh = stored !== undefined && now() - stored.createdAt < TICKET_KEYS_MAX_AGE_MS;
    const keys = new SessionTicketKeys(
      secret,
      fresh ? stored : newEpoch(now()),
      options.revokedSerials,
      { path, log: options.log },
      now,
    );
    keys.#unsaved = !fresh;
    return keys;
  }

  /** Keys from a secret of this process alone, never written: a relay without a CA behind it (tests). */
  static ephemeral(revokedSerials: ReadonlySet<string>, now: () => number = Date.now): SessionTicketKeys {
    return new SessionTicketKeys(
      randomBytes(EPHEMERAL_SECRET_BYTES),
      newEpoch(now()),
      revokedSerials,
      undefined,
      now,
    );
  }

  /** Writes keys made at open() (none stored, too old, damaged) to the state directory. */
  async save(): Promise<void> {
    const path = this.#path;
    if (!this.#unsaved || path === undefined) return;
    this.#unsaved = false;
    const epoch = this.#epoch;
    // On the chain of rotations' writes: two replacements of one file never overlap.
    const written = this.#writes.then(() => writeEpoch(path, epoch));
    this.#writes = written.catch(() => undefined);
    try {
      await written;
    } catch (cause) {
      throw fileError(
        'write the session ticket keys',
        path,
        cause,
        'the relay needs write access to its state directory',
      );
    }
  }

  /** The keys for Node's `ticketKeys`. */
  get keys(): Buffer {
    return this.#keys;
  }

  /**
   * New keys, in force from the caller's next setSecureContext; written to the state file in the
   * background (a crash before the write only means the old salt at the next start, and the
   * revoked set, part of the derivation, still changes the keys if a revocation caused this).
   */
  rotate(revokedSerials: ReadonlySet<string>): Buffer {
    this.#epoch = newEpoch(this.#now());
    this.#keys = deriveTicketKeys(this.#secret, this.#epoch.salt, revokedSerials);
    this.#unsaved = false;
    this.#armAgeTimer();
    const path = this.#path;
    if (path !== undefined) {
      const epoch = this.#epoch;
      this.#writes = this.#writes
        .then(() => writeEpoch(path, epoch))
        .catch((error: unknown) => {
          this.#log?.error(
            { err: error, path },
            'cannot write the session ticket keys; they hold until restart',
          );
        });
    }
    return this.#keys;
  }

  /**
   * Rotates the keys whenever they reach TICKET_KEYS_MAX_AGE_MS, handing the new ones to `apply`
   * (which must load them with the full TLS option set). `revokedSerials` is read at each rotation;
   * every rotation, for whatever reason, starts the age over.
   */
  rotateByAge(revokedSerials: ReadonlySet<string>, apply: (keys: Buffer) => void): void {
    this.#byAge = { revokedSerials, apply };
    this.#armAgeTimer();
  }

  #armAgeTimer(): void {
    const byAge = this.#byAge;
    if (byAge === undefined) return;
    clearTimeout(this.#ageTimer);
    const dueInMs = Math.max(0, this.#epoch.createdAt + TICKET_KEYS_MAX_AGE_MS - this.#now());
    this.#ageTimer = setTimeout(() => byAge.apply(this.rotate(byAge.revokedSerials)), dueInMs);
    this.#ageTimer.unref();
  }

  /** Resolves once every rotation so far is on disk (or its failure logged). */
  flushed(): Promise<void> {
    return this.#writes;
  }

  async close(): Promise<void> {
    this.#byAge = undefined;
    clearTimeout(this.#ageTimer);
    await this.#writes;
  }
}

/** HKDF-SHA-256(secret, salt, label || digest of the revoked serials), 48 bytes. */
function deriveTicketKeys(secret: Buffer, salt: Buffer, revokedSerials: ReadonlySet<string>): Buffer {
  const revoked = createHash('sha256')
    .update([...revokedSerials].sort().join('\n'))
    .digest('hex');
  return Buffer.from(hkdfSync('sha256', secret, salt, `${DERIVATION_LABEL}\0${revoked}`, TICKET_KEY_BYTES));
}

function newEpoch(now: number): Epoch {
  return { salt: randomBytes(SALT_BYTES), createdAt: now };
}

function writeEpoch(path: string, epoch: Epoch): Promise<void> {
  const contents = {
    version: FILE_VERSION,
    salt: epoch.salt.toString('base64'),
    createdAt: new Date(epoch.createdAt).toISOString(),
  };
  return replaceFileDurably(path, `${JSON.stringify(contents)}\n`);
}

/** The stored epoch; undefined when there is none or it is damaged (then logged as a warning). */
async function readEpoch(path: string, now: number, log: Logger): Promise<Epoch | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fileError('read the session ticket keys', path, cause);
  }
  const damaged = (why: string): undefined => {
    log.warn({ path }, `the session ticket key file ${quote(path)} ${why}: replaced with new keys`);
    return undefined;
  };
  try {
    refuseOpenPermissions(path);
  } catch {
    return damaged('is open to other users or not ours');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return damaged('is not JSON');
  }
  const record = parsed as { version?: unknown; salt?: unknown; createdAt?: unknown } | null;
  if (
    typeof record !== 'object' ||
    record === null ||
    Object.keys(record).sort().join() !== 'createdAt,salt,version' ||
    record.version !== FILE_VERSION ||
    typeof record.salt !== 'string' ||
    typeof record.createdAt !== 'string'
  ) {
    return damaged(`is not a version ${FILE_VERSION} ticket key file`);
  }
  const salt = Buffer.from(record.salt, 'base64');
  if (salt.length !== SALT_BYTES || salt.toString('base64') !== record.salt) {
    return damaged(`holds no ${SALT_BYTES}-byte salt`);
  }
  const createdAt = Date.parse(record.createdAt);
  if (!Number.isFinite(createdAt) || createdAt > now + MAX_CLOCK_SKEW_MS) {
    return damaged('has no valid time of creation');
  }
  return { salt, createdAt };
}

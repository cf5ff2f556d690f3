/**
 * The backup's encryption: a passphrase-based authenticated envelope, node:crypto only.
 *
 * scrypt (RFC 7914) turns the passphrase and a random salt into 64 bytes: an AES-256-GCM key
 * (NIST SP 800-38D) for the contents and an HMAC-SHA-256 key for the header. The header MAC is
 * checked first, so a wrong passphrase is told apart from a damaged file (as age's header MAC
 * does); then GCM, whose tag covers the contents and, as additional data, the whole header. Not a
 * byte is released before the tag verifies: decryption runs over the whole file in memory and
 * restore writes nothing until it has.
 *
 * Why not age (the npm package age-encryption, 0.3 today): a pre-1.0 dependency, with its own
 * crypto libraries, for what node:crypto (OpenSSL) does in this one file with the same kind of
 * primitives (scrypt, an AEAD, a header MAC); what age would add, public-key recipients, the
 * appliance does not need. An operator who wants age can encrypt the file again with it.
 *
 * Layout, version 1 (big-endian, 97-byte header, then the ciphertext, then the 16-byte tag):
 *   magic "dmz-relay-backup" (16) | version (1) | kdf = 1 scrypt (1) | log2 N (1) | r (1) | p (1)
 *   | salt (32) | GCM nonce (12) | HMAC-SHA-256 of the 65 bytes before it (32)
 */
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  randomBytes,
  scrypt,
  timingSafeEqual,
  type BinaryLike,
  type ScryptOptions,
} from 'node:crypto';
import { DmzError } from '../relay/protocol/errors.ts';

export const BACKUP_MAGIC = Buffer.from('dmz-relay-backup', 'ascii');
export const BACKUP_FORMAT_VERSION = 1;
const KDF_SCRYPT = 1;
/**
 * scrypt N = 2^17, r = 8, p = 1: 128 MiB and about 0.35 s here per guess, OWASP's recommended
 * minimum for scrypt. A backup leaves the appliance; this is what an offline guess costs.
 */
const SCRYPT_COST = { log2N: 17, r: 8, p: 1 } as const;
/**
 * What an opened header may ask for. The parameters are read before anything is verified, so a
 * forged header must not make restore allocate gigabytes: 2^18 x 8 x 128 B = 256 MiB at most.
 */
const SCRYPT_BOUNDS = { log2N: { min: 15, max: 18 }, r: { min: 8, max: 8 }, p: { min: 1, max: 4 } } as const;
/** scrypt needs 128 x N x r bytes; Node refuses above maxmem (32 MiB by default). */
const SCRYPT_MAX_MEMORY = 2 ** SCRYPT_BOUNDS.log2N.max * SCRYPT_BOUNDS.r.max * 128 + 2 ** 20;
const SALT_BYTES = 32;
/** SP 800-38D section 8.2: 96-bit nonces; each backup has its own key, so a random one never repeats. */
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const MAC_BYTES = 32;
const KEY_BYTES = 32;
const OFFSET = { version: 16, kdf: 17, log2N: 18, r: 19, p: 20, salt: 21, nonce: 53, mac: 65 } as const;
export const BACKUP_HEADER_BYTES = OFFSET.mac + MAC_BYTES;

interface ScryptCost {
  readonly log2N: number;
  readonly r: number;
  readonly p: number;
}

/** Encrypts `contents` under `passphrase`: the whole backup file. */
export async function sealBackup(contents: Uint8Array, passphrase: string): Promise<Buffer> {
  const header = Buffer.alloc(BACKUP_HEADER_BYTES);
  BACKUP_MAGIC.copy(header, 0);
  header.writeUInt8(BACKUP_FORMAT_VERSION, OFFSET.version);
  header.writeUInt8(KDF_SCRYPT, OFFSET.kdf);
  header.writeUInt8(SCRYPT_COST.log2N, OFFSET.log2N);
  header.writeUInt8(SCRYPT_COST.r, OFFSET.r);
  header.writeUInt8(SCRYPT_COST.p, OFFSET.p);
  randomBytes(SALT_BYTES).copy(header, OFFSET.salt);
  randomBytes(NONCE_BYTES).copy(header, OFFSET.nonce);
  const keys = await deriveKeys(passphrase, header.subarray(OFFSET.salt, OFFSET.nonce), SCRYPT_COST);
  headerMac(keys.macKey, header).copy(header, OFFSET.mac);
  const cipher = createCipheriv('aes-256-gcm', keys.encryptionKey, header.subarray(OFFSET.nonce, OFFSET.mac));
  cipher.setAAD(header);
  const ciphertext = Buffer.concat([cipher.update(contents), cipher.final()]);
  return Buffer.concat([header, ciphertext, cipher.getAuthTag()]);
}

/**
 * The contents of a backup file, once its header MAC and its GCM tag both verify:
 * PKI_ERR_BACKUP_DAMAGED (truncated, altered, not a backup), PKI_ERR_BACKUP_VERSION, or
 * PKI_ERR_BACKUP_PASSPHRASE (the passphrase does not open it) otherwise.
 */
export async function openBackup(file: Uint8Array, passphrase: string): Promise<Buffer> {
  const bytes = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
  if (bytes.length < BACKUP_MAGIC.length || !bytes.subarray(0, BACKUP_MAGIC.length).equals(BACKUP_MAGIC)) {
    throw damaged('it is not a dmz-relay backup (no backup header)');
  }
  if (bytes.length < BACKUP_HEADER_BYTES + TAG_BYTES) throw damaged('it is truncated');
  const version = bytes.readUInt8(OFFSET.version);
  if (version !== BACKUP_FORMAT_VERSION) {
    throw new DmzError(
      'PKI_ERR_BACKUP_VERSION',
      `the backup is of format version ${version}; this program reads version ${BACKUP_FORMAT_VERSION}`,
      { hint: 'restore it with the dmz-relay release that wrote it, or a later one' },
    );
  }
  const header = bytes.subarray(0, BACKUP_HEADER_BYTES);
  const cost = { log2N: header[OFFSET.log2N] ?? 0, r: header[OFFSET.r] ?? 0, p: header[OFFSET.p] ?? 0 };
  if (header.readUInt8(OFFSET.kdf) !== KDF_SCRYPT || !withinBounds(cost)) {
    throw damaged('its key derivation parameters are not ones this program writes');
  }
  const keys = await deriveKeys(passphrase, header.subarray(OFFSET.salt, OFFSET.nonce), cost);
  const mac = header.subarray(OFFSET.mac, BACKUP_HEADER_BYTES);
  if (!timingSafeEqual(mac, headerMac(keys.macKey, header))) {
    throw new DmzError('PKI_ERR_BACKUP_PASSPHRASE', 'the passphrase does not open this backup', {
      hint: 'check the backup passphrase given (or the header of the file was altered)',
    });
  }
  const decipher = createDecipheriv(
    'aes-256-gcm',
    keys.encryptionKey,
    header.subarray(OFFSET.nonce, OFFSET.mac),
    { authTagLength: TAG_BYTES },
  );
  decipher.setAAD(header);
  decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
  const contents = decipher.update(bytes.subarray(BACKUP_HEADER_BYTES, bytes.length - TAG_BYTES));
  try {
    // Until final() has checked the tag, `contents` is unauthenticated: it is dropped on failure.
    return Buffer.concat([contents, decipher.final()]);
  } catch (cause) {
    throw damaged('it is truncated or altered (its authentication tag does not verify)', cause);
  }
}

async function deriveKeys(
  passphrase: string,
  salt: Buffer,
  cost: ScryptCost,
): Promise<{ encryptionKey: Buffer; macKey: Buffer }> {
  const options: ScryptOptions = { N: 2 ** cost.log2N, r: cost.r, p: cost.p, maxmem: SCRYPT_MAX_MEMORY };
  // NFC: the same passphrase typed on two systems may arrive composed or decomposed.
  const derived = await scryptAsync(passphrase.normalize('NFC'), salt, KEY_BYTES * 2, options);
  return { encryptionKey: derived.subarray(0, KEY_BYTES), macKey: derived.subarray(KEY_BYTES) };
}

function scryptAsync(password: BinaryLike, salt: BinaryLike, length: number, options: ScryptOptions) {
  // In libuv's thread pool, not on the event loop: a relay process could call it too.
  return new Promise<Buffer>((resolve, reject) => {
    scrypt(password, salt, length, options, (error, key) => (error === null ? resolve(key) : reject(error)));
  });
}

function headerMac(macKey: Buffer, header: Buffer): Buffer {
  return createHmac('sha256', macKey).update(header.subarray(0, OFFSET.mac)).digest();
}

function withinBounds(cost: ScryptCost): boolean {
  return (Object.keys(SCRYPT_BOUNDS) as (keyof ScryptCost)[]).every(
    (name) => cost[name] >= SCRYPT_BOUNDS[name].min && cost[name] <= SCRYPT_BOUNDS[name].max,
  );
}

function damaged(why: string, cause?: unknown): DmzError {
  return new DmzError('PKI_ERR_BACKUP_DAMAGED', `the backup file cannot be used: ${why}`, {
    ...(cause === undefined ? {} : { cause }),
    hint: 'nothing was restored; use another copy of the backup',
  });
}

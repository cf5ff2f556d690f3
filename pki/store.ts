/**
 * The CA's transactional state (tokens, issued certificates, revocations, counters) in SQLite.
 * Two processes use it at once: the `dmz-pki` CLI writes (tokens, revocations) while the relay
 * consumes tokens and polls `revision()` to reload its CRL. WAL lets readers run beside the one
 * writer; busy_timeout makes a writer wait for the lock instead of failing.
 */
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { DmzError } from '../relay/protocol/errors.ts';
import {
  PRIVATE_DIRECTORY_MODE,
  PRIVATE_FILE_MODE,
  refuseOpenPermissions,
} from '../relay/protocol/file-permissions.ts';
import type { Role } from '../relay/protocol/identity.ts';
import { normalizeSerialHex } from './serial.ts';
import { PKI_CLI_OPENER, refuseOtherOwner, type StateOpener } from './state-owner.ts';

export const PKI_DB_FILE = 'pki.db';
/** The CLI's writes are short; 5 s is far beyond any of them, yet a wedged peer still surfaces. */
const BUSY_TIMEOUT_MS = 5000;
/**
 * The files in the state directory are checked here for their mode bits only: their owners, and
 * the directory's, are refuseOtherOwner's, with an error that says how to run as the owner.
 */
const STATE_ACCESS = { owner: 'any' } as const;

export type TokenStatus = 'active' | 'used' | 'revoked' | 'expired';
export type CertificateStatus = 'valid' | 'expired' | 'revoked';

export interface NewTokenRecord {
  jti: string;
  name: string;
  role: Role;
  createdAt: Date;
  expiresAt: Date;
}

export interface TokenRecord extends NewTokenRecord {
  usedAt: Date | null;
  revokedAt: Date | null;
  usedBySerial: string | null;
  status: TokenStatus;
}

export interface NewCertificateRecord {
  serialHex: string;
  name: string;
  role: Role;
  notBefore: Date;
  notAfter: Date;
  issuedAt: Date;
  certPem: string;
  /** The consumed token this certificate was enrolled with; linked in the same transaction. */
  enrolledWithJti?: string;
  /**
   * The certificate this one renews; its `replacedBy` is set in the same transaction, which fails
   * (PKI_ERR_NOT_FOUND, nothing recorded) when that certificate is unknown or revoked.
   */
  replacesSerial?: string;
}

export interface CertificateRecord extends Omit<NewCertificateRecord, 'enrolledWithJti' | 'replacesSerial'> {
  revokedAt: Date | null;
  revocationReason: string | null;
  /** Serial of the certificate that renewed this one. */
  replacedBy: string | null;
  status: CertificateStatus;
}

export type RevokedCertificate = Pick<CertificateRecord, 'serialHex'> & { revokedAt: Date };

export interface PkiStore {
  recordToken(token: NewTokenRecord): void;
  /** Active tokens only, unless `includeSpent` (used, revoked, expired) is set. */
  listTokens(opts?: { includeSpent?: boolean; now?: Date }): TokenRecord[];
  revokeToken(jti: string): void;
  /** Revokes every unused, unrevoked token for agent `name`; returns how many. */
  revokeTokensOf(name: string, now: Date): number;
  consumeToken(jti: string, now: Date): TokenRecord;
  hasOutstandingTokens(now: Date): boolean;
  recordCertificate(certificate: NewCertificateRecord): void;
  listCertificates(opts?: { now?: Date }): CertificateRecord[];
  findCertificates(nameOrSerial: string, opts?: { now?: Date }): CertificateRecord[];
  /**
   * Whether this CA recorded a certificate with this serial (normalized, pki/serial.ts). Every
   * certificate it issues is recorded before it is handed out; one it has no record of was issued
   * after the backup this store was restored from, and `revoke` cannot reach it: the relay
   * admits none (relay/server/agent-listener.ts).
   */
  hasCertificate(serialHex: string): boolean;
  /** Revokes every unrevoked certificate of that agent name, or the one serial; returns those. */
  revokeCertificates(nameOrSerial: string, reason: string, now: Date): CertificateRecord[];
  revokedCertificates(): RevokedCertificate[];
  nextCrlNumber(): number;
  /** Makes the next CRL number greater than `floor` (restore.ts); never lowers it. */
  raiseCrlNumber(floor: number): void;
  getMeta(key: string): string | undefined;
  setMeta(key: string, value: string): void;
  /** Bumped in the same transaction as every revocation (certificate or token). */
  revision(): number;
  /** SQLite's PRAGMA data_version: changes when another connection commits anything. */
  dataVersion(): number;
  /**
   * Runs `work` in one write transaction, begun IMMEDIATE so that it holds the database's write
   * lock from the start: what it changes commits together, or not at all when it throws. The PKI
   * audit log appends its records inside one (pki/audit-log.ts), so a change and its record go
   * together and two processes never append at once. `work` must be synchronous.
   */
  transaction<T>(work: () => T): T;
  /**
   * Copies the database to a new file at `destination` with SQLite's online backup API: one
   * consistent snapshot while the relay and other CLI commands go on writing.
   */
  backup(destination: string): Promise<void>;
  close(): void;
}

/** How a record sits in SQLite: dates as integer milliseconds, columns aliased to field names. */
type Millis<V> = [V] extends [Date] ? number : [V] extends [Date | null] ? number | null : V;
type Row<T> = { [K in keyof T]: Millis<T[K]> };
type TokenRow = Row<Omit<TokenRecord, 'status'>>;
type CertificateRow = Row<Omit<CertificateRecord, 'status'>>;
const TOKEN_COLUMNS = `jti, name, role, created_at AS createdAt, expires_at AS expiresAt, used_at AS usedAt,
  revoked_at AS revokedAt, used_by_serial AS usedBySerial`;
const CERTIFICATE_COLUMNS = `serial_hex AS serialHex, name, role, not_before AS notBefore, not_after AS notAfter,
  issued_at AS issuedAt, cert_pem AS certPem, revoked_at AS revokedAt, revocation_reason AS revocationReason,
  replaced_by AS replacedBy`;

/** Index = resulting user_version - 1. Append only: a shipped migration never changes. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE tokens (
     jti TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL CHECK (role IN ('ot', 'it')),
     created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
     used_at INTEGER, revoked_at INTEGER, used_by_serial TEXT) STRICT;
   CREATE TABLE certificates (
     serial_hex TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL CHECK (role IN ('ot', 'it')),
     not_before INTEGER NOT NULL, not_after INTEGER NOT NULL, issued_at INTEGER NOT NULL,
     cert_pem TEXT NOT NULL, revoked_at INTEGER, revocation_reason TEXT, replaced_by TEXT) STRICT;
   CREATE INDEX certificates_by_name ON certificates (name);
   CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
   CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT;
   INSERT INTO counters (name, value) VALUES ('crl_number', 0), ('revision', 0);`,
];

/** `opener` is the program opening it, for the refusal of another user's state (state-owner.ts). */
export function openPkiStore(stateDir: string, opener: StateOpener = PKI_CLI_OPENER): PkiStore {
  mkdirSync(stateDir, { recursive: true, mode: PRIVATE_DIRECTORY_MODE });
  refuseOtherOwner(stateDir, opener);
  refuseOpenPermissions(stateDir, STATE_ACCESS);
  const path = join(stateDir, PKI_DB_FILE);
  // Create the file ourselves so it is born 0600; SQLite gives its -wal and -shm files the same mode.
  closeSync(openSync(path, 'a', PRIVATE_FILE_MODE));
  refuseOpenPermissions(path, STATE_ACCESS);
  const db = new Database(path);
  try {
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    db.pragma('journal_mode = WAL');
    // A revocation the CLI reported done must survive power loss: keep full fsync in WAL mode.
    db.pragma('synchronous = FULL');
    migrate(db);
    return createStore(db);
  } catch (err) {
    db.close();
    throw err;
  }
}

function migrate(db: Database.Database): void {
  // IMMEDIATE: two processes opening a fresh store at once must not both run migration 1.
  db.transaction(() => {
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > MIGRATIONS.length) {
      // A downgrade would run on tables it does not know: refuse, and say what to do.
      throw new DmzError(
        'PKI_ERR_STORE_VERSION',
        `pki.db is at schema version ${version}, this program knows ${MIGRATIONS.length}: run the newer version, or restore a backup taken with this one`,
      );
    }
    for (const [index, sql] of MIGRATIONS.entries()) {
      if (index < version) continue;
      db.exec(sql);
      db.pragma(`user_version = ${index + 1}`);
    }
  }).immediate();
}

function createStore(db: Database.Database): PkiStore {
  const tokenByJti = db.prepare<[string], TokenRow>(`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE jti = ?`);
  const allTokens = db.prepare<[], TokenRow>(`SELECT ${TOKEN_COLUMNS} FROM tokens ORDER BY createdAt, jti`);
  // One statement is one atomic step in SQLite: of any number of racing processes exactly one
  // sees used_at IS NULL and flips it; the others change no row.
  const consume = db.prepare<[number, string, number], TokenRow>(
    `UPDATE tokens SET used_at = ? WHERE jti = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?
     RETURNING ${TOKEN_COLUMNS}`,
  );
  const certificatesMatching = db.prepare<[string, string], CertificateRow>(
    `SELECT ${CERTIFICATE_COLUMNS} FROM certificates WHERE name = ? OR serial_hex = ? ORDER BY issued_at, serial_hex`,
  );
  // The CA writes serials without leading zeros (authority.ts), so the normalized form is the key.
  const certificateBySerial = db.prepare<[string]>('SELECT 1 FROM certificates WHERE serial_hex = ?');
  const insertToken = db.prepare<[string, string, Role, number, number]>(
    'INSERT INTO tokens (jti, name, role, created_at, expires_at) VALUES (?, ?, ?, ?, ?)',
  );
  const insertCertificate = db.prepare<[string, string, Role, number, number, number, string]>(
    `INSERT INTO certificates (serial_hex, name, role, not_before, not_after, issued_at, cert_pem)
     VALUES (?, ?, ?, ?, ?, ?, ?)`,
  );
  const allCertificates = db.prepare<[], CertificateRow>(
    `SELECT ${CERTIFICATE_COLUMNS} FROM certificates ORDER BY issued_at, serial_hex`,
  );
  const revokedSerials = db.prepare<[], { serialHex: string; revokedAt: number }>(
    `SELECT serial_hex AS serialHex, revoked_at AS revokedAt FROM certificates
     WHERE revoked_at IS NOT NULL ORDER BY revoked_at, serial_hex`,
  );
  const bumpCounter = db.prepare<[string], { value: number }>(
    'UPDATE counters SET value = value + 1 WHERE name = ? RETURNING value',
  );
  const readCounter = db.prepare<[string], { value: number }>('SELECT value FROM counters WHERE name = ?');
  const tokens = (now: Date): TokenRecord[] => allTokens.all().map((row) => toTokenRecord(row, now));
  const certificates = (rows: CertificateRow[], now: Date) =>
    rows.map((row) => toCertificateRecord(row, now));

  const revokeToken = db.transaction((jti: string) => {
    const row = tokenByJti.get(jti);
    if (row === undefined) throw new DmzError('PKI_ERR_NOT_FOUND');
    if (row.usedAt !== null) throw new DmzError('PKI_ERR_TOKEN_USED');
    if (row.revokedAt !== null) return;
    db.prepare('UPDATE tokens SET revoked_at = ? WHERE jti = ?').run(Date.now(), jti);
    bumpCounter.get('revision');
  });

  const revokeTokensOf = db.transaction((name: string, now: Date) => {
    // Unused tokens, and tokens in use (consumed, their certificate being signed and not recorded
    // yet): recordCertificate refuses to record a certificate whose token was revoked meanwhile.
    const { changes } = db
      .prepare(
        'UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL AND used_by_serial IS NULL',
      )
      .run(ms(now), name);
    if (changes > 0) bumpCounter.get('revision');
    return changes;
  });

  const tokenRevoked = db.prepare('SELECT 1 FROM tokens WHERE jti = ? AND revoked_at IS NOT NULL');
  const recordCertificate = db.transaction((c: NewCertificateRecord) => {
    const serial = c.serialHex.toLowerCase();
    const { name, role, notBefore, notAfter, issuedAt, certPem } = c;
    insertCertificate.run(serial, name, role, ms(notBefore), ms(notAfter), ms(issuedAt), certPem);
    const links: [string, string | undefined, string][] = [
      [
        // The renewal checked its predecessor before signing, but `dmz-pki revoke` (another
        // process) may have committed since: only an unrevoked predecessor may be replaced, here
        // in the insert's transaction, so a revocation landing in between rolls the insert back.
        'UPDATE certificates SET replaced_by = ? WHERE serial_hex = ? AND revoked_at IS NULL',
        c.replacesSerial?.toLowerCase(),
        'no unrevoked certificate with the serial it replaces',
      ],
      [
        // Likewise `dmz-pki revoke NAME` may have revoked the token while this certificate was
        // being signed: then the enrollment fails here and no certificate of NAME is recorded.
        'UPDATE tokens SET used_by_serial = ? WHERE jti = ? AND used_at IS NOT NULL AND used_by_serial IS NULL AND revoked_at IS NULL',
        c.enrolledWithJti,
        'no used, unrevoked token with the jti it was enrolled with',
      ],
    ];
    for (const [sql, target, missing] of links) {
      // A dangling link would be a lie in the audit trail: fail the whole insert instead.
      if (target !== undefined && db.prepare(sql).run(serial, target).changes === 0) {
        if (target === c.enrolledWithJti && tokenRevoked.get(target) !== undefined) {
          throw new DmzError(
            'PKI_ERR_TOKEN_REVOKED',
            'the enrollment token was revoked while it was being used',
          );
        }
        throw new DmzError('PKI_ERR_NOT_FOUND', missing);
      }
    }
  });

  const revokeCertificates = db.transaction((nameOrSerial: string, reason: string, now: Date) => {
    const key = nameOrSerial.toLowerCase();
    if (certificatesMatching.all(key, key).length === 0) throw new DmzError('PKI_ERR_NOT_FOUND');
    const revoked = db
      .prepare<[number, string, string, string], CertificateRow>(
        `UPDATE certificates SET revoked_at = ?, revocation_reason = ? WHERE (name = ? OR serial_hex = ?)
         AND revoked_at IS NULL RETURNING ${CERTIFICATE_COLUMNS}`,
      )
      .all(ms(now), reason, key, key);
    if (revoked.length > 0) bumpCounter.get('revision');
    return certificates(revoked, now);
  });

  // Write transactions run with .immediate(): taking the write lock up front lets busy_timeout
  // apply, where a deferred read-then-write transaction could fail with SQLITE_BUSY on upgrade.
  return {
    recordToken: (t) => void insertToken.run(t.jti, t.name, t.role, ms(t.createdAt), ms(t.expiresAt)),
    listTokens({ includeSpent = false, now = new Date() } = {}) {
      return tokens(now).filter((t) => includeSpent || t.status === 'active');
    },
    revokeToken: (jti) => revokeToken.immediate(jti),
    revokeTokensOf: (name, now) => revokeTokensOf.immediate(name, now),
    consumeToken(jti, now) {
      const row = consume.get(ms(now), jti, ms(now));
      if (row !== undefined) return toTokenRecord(row, now);
      // Lost or refused: read the row only to say precisely why. The UPDATE alone decided.
      const current = tokenByJti.get(jti);
      if (current === undefined) throw new DmzError('PKI_ERR_TOKEN_UNKNOWN');
      if (current.usedAt !== null) throw new DmzError('PKI_ERR_TOKEN_USED');
      if (current.revokedAt !== null) throw new DmzError('PKI_ERR_TOKEN_REVOKED');
      throw new DmzError('PKI_ERR_TOKEN_EXPIRED');
    },
    // A relay has at most hundreds of tokens (one per enrollment); one status rule beats two.
    hasOutstandingTokens: (now) => tokens(now).some((t) => t.status === 'active'),
    recordCertificate: (c) => recordCertificate.immediate(c),
    listCertificates: ({ now = new Date() } = {}) => certificates(allCertificates.all(), now),
    findCertificates(nameOrSerial, { now = new Date() } = {}) {
      const key = nameOrSerial.toLowerCase();
      return certificates(certificatesMatching.all(key, key), now);
    },
    hasCertificate: (serialHex) => certificateBySerial.get(normalizeSerialHex(serialHex)) !== undefined,
    revokeCertificates: (target, reason, now) => revokeCertificates.immediate(target, reason, now),
    revokedCertificates: () =>
      revokedSerials.all().map((row) => ({ serialHex: row.serialHex, revokedAt: new Date(row.revokedAt) })),
    // RFC 5280 section 5.2.3: the CRL number increases monotonically; one UPDATE ... RETURNING
    // is atomic, so two processes never hand out the same number.
    nextCrlNumber: () => bumpCounter.get('crl_number')?.value ?? 0,
    raiseCrlNumber(floor) {
      db.prepare("UPDATE counters SET value = max(value, ?) WHERE name = 'crl_number'").run(floor);
    },
    getMeta: (key) =>
      db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?').get(key)?.value,
    setMeta(key, value) {
      db.prepare(
        'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
      ).run(key, value);
    },
    revision: () => readCounter.get('revision')?.value ?? 0,
    dataVersion: () => db.pragma('data_version', { simple: true }) as number,
    transaction: (work) => db.transaction(work).immediate(),
    backup: async (destination) => {
      await db.backup(destination);
    },
    close: () => db.close(),
  };
}

function toTokenRecord(row: TokenRow, now: Date): TokenRecord {
  const { createdAt, expiresAt, usedAt, revokedAt } = row;
  const status = usedAt !== null ? 'used' : revokedAt !== null ? 'revoked' : lapsed(expiresAt, now);
  const dates = { createdAt: new Date(createdAt), expiresAt: new Date(expiresAt) };
  return { ...row, ...dates, usedAt: dateOrNull(usedAt), revokedAt: dateOrNull(revokedAt), status };
}

function toCertificateRecord(row: CertificateRow, now: Date): CertificateRecord {
  const { notBefore, notAfter, issuedAt, revokedAt } = row;
  const status = revokedAt !== null ? 'revoked' : lapsed(notAfter, now) === 'active' ? 'valid' : 'expired';
  const validity = { notBefore: new Date(notBefore), notAfter: new Date(notAfter) };
  return { ...row, ...validity, issuedAt: new Date(issuedAt), revokedAt: dateOrNull(revokedAt), status };
}

/** The end instant itself already counts as expired, as for JWT `exp` (RFC 7519 section 4.1.4). */
const lapsed = (endMs: number, now: Date): 'active' | 'expired' => (endMs <= ms(now) ? 'expired' : 'active');
const ms = (date: Date): number => date.getTime();
const dateOrNull = (millis: number | null): Date | null => (millis === null ? null : new Date(millis));

/**
 * `dmz-pki backup`'s work: one consistent copy of the whole CA state (and the relay's
 * configuration) while the relay runs, sealed under a passphrase (backup-envelope.ts).
 *
 * Consistent: the database is copied with SQLite's online backup API (a snapshot of one
 * instant, whatever the relay commits meanwhile), and the files are read before it. Every file
 * the relay or `dmz-pki` rewrites is replaced by rename (durable-files.ts), so each is read whole,
 * and the store is then at least as new as any of them: the CRL read can only miss a revocation
 * the store has, which the relay republishes at its first start on the restored state
 * (revocation.ts, publishedCrlIsStale); never the other way round. The PKI audit log is read
 * after the store, under its write lock (audit-log.ts): it holds the record of every change the
 * copy of the store holds, and perhaps a few after, which restore names.
 */
import { link, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileError, quote } from '../relay/protocol/command-line.ts';
import { asidePath, syncDirectory, writeNewFileFlushed } from '../relay/protocol/durable-files.ts';
import { DmzError } from '../relay/protocol/errors.ts';
import { loadRelayConfig } from '../relay/server/config.ts';
import { readAuditLogExclusively } from './audit-log.ts';
import { BACKUP_STATE_FILES, CONFIG_ENTRY, encodeArchive, type ArchiveEntry } from './backup-archive.ts';
import { sealBackup } from './backup-envelope.ts';
import { readRelayCertificate } from './relay-certificate.ts';
import { AUDIT_LOG_FILE, STATE_FILES } from './state-layout.ts';
import type { PkiState } from './state.ts';

/**
 * Twenty characters. The backup leaves the appliance and can be attacked offline, for ever; the
 * length is only the floor a machine can check. What protects it is randomness: SECURITY.md asks
 * for a generated passphrase (`openssl rand -base64 32`), kept apart from the backup.
 */
export const MIN_BACKUP_PASSPHRASE_LENGTH = 20;
/** A reissue (`dmz-pki relay-cert`) replaces the relay's key and certificate one after the other. */
const RELAY_PAIR_READS = 5;
const RELAY_PAIR_RETRY_MS = 100;

export interface BackupSummary {
  readonly bytes: number;
  readonly files: readonly string[];
  readonly trustDomain: string;
  readonly caFingerprint: string;
  readonly createdAt: Date;
}

export interface CreateBackupOptions {
  readonly state: PkiState;
  /** The relay's configuration file, checked to be one for this state directory. */
  readonly configPath?: string;
  readonly passphrase: string;
  /** The backup file: created, never overwritten. */
  readonly out: string;
  /**
   * Called once the backup is sealed, before any file of it is written: the command's audit
   * record (pki/audit-trail.ts) commits there, so no kill leaves a backup unrecorded.
   */
  readonly record?: (summary: BackupSummary) => void;
}

export async function createBackup(options: CreateBackupOptions): Promise<BackupSummary> {
  const { state, passphrase, out } = options;
  if (Array.from(passphrase).length < MIN_BACKUP_PASSPHRASE_LENGTH) {
    throw new DmzError(
      'PKI_ERR_BACKUP_PASSPHRASE_WEAK',
      `the backup passphrase has fewer than ${MIN_BACKUP_PASSPHRASE_LENGTH} characters`,
      { hint: 'generate one, e.g. openssl rand -base64 32, and keep it apart from the backup' },
    );
  }
  const config = options.configPath === undefined ? [] : [await readConfig(options.configPath, state)];
  const files = await readStateFiles(state);
  const database = await snapshotDatabase(state);
  // After the store's copy, so that it holds the record of every change that copy holds.
  const auditLog = readAuditLogExclusively(state);
  const audit: ArchiveEntry[] =
    auditLog === undefined ? [] : [{ kind: 'state', name: AUDIT_LOG_FILE, contents: auditLog }];
  const entries: ArchiveEntry[] = [...files, database, ...audit, ...config];
  const createdAt = new Date();
  const sealed = await sealBackup(
    encodeArchive({
      createdAt,
      trustDomain: state.trustDomain,
      caFingerprint: state.caFingerprint,
      entries,
    }),
    passphrase,
  );
  const summary: BackupSummary = {
    bytes: sealed.length,
    files: entries.map((entry) => entry.name),
    trustDomain: state.trustDomain,
    caFingerprint: state.caFingerprint,
    createdAt,
  };
  options.record?.(summary);
  await writeBackupFile(out, sealed);
  return summary;
}

/** Every state file but the database, each whole; the relay's pair checked to match. */
async function readStateFiles(state: PkiState): Promise<ArchiveEntry[]> {
  const { stateDir } = state;
  const relayPair = await readRelayPair(stateDir);
  const entries: ArchiveEntry[] = [];
  const wanted = [...BACKUP_STATE_FILES.required, ...BACKUP_STATE_FILES.optional];
  for (const name of wanted) {
    if (name === STATE_FILES.database || name === AUDIT_LOG_FILE) continue;
    const contents =
      name === STATE_FILES.relayCertificate
        ? Buffer.from(relayPair.certPem)
        : name === STATE_FILES.relayKey
          ? Buffer.from(relayPair.keyPem)
          : await readStateFile(stateDir, name, BACKUP_STATE_FILES.optional.includes(name));
    if (contents !== undefined) entries.push({ kind: 'state', name, contents });
  }
  return entries;
}

/** The relay's key and certificate as a matching pair, read again while a reissue is half done. */
async function readRelayPair(stateDir: string) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await readRelayCertificate(stateDir);
    } catch (error) {
      const midReissue = error instanceof DmzError && error.code === 'PKI_ERR_RELAY_CERT_MISMATCH';
      if (!midReissue || attempt === RELAY_PAIR_READS) throw error;
      await new Promise((done) => setTimeout(done, RELAY_PAIR_RETRY_MS));
    }
  }
}

async function readStateFile(stateDir: string, name: string, optional: boolean): Promise<Buffer | undefined> {
  const path = join(stateDir, name);
  try {
    return await readFile(path);
  } catch (cause) {
    if (optional && (cause as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fileError('read', path, cause);
  }
}

async function snapshotDatabase(state: PkiState): Promise<ArchiveEntry> {
  // A directory of this user alone (mkdtemp makes it 0700) for SQLite's copy, gone afterwards.
  const scratch = await mkdtemp(join(tmpdir(), 'dmz-pki-backup-'));
  try {
    const copy = join(scratch, STATE_FILES.database);
    await state.store.backup(copy);
    return { kind: 'state', name: STATE_FILES.database, contents: await readFile(copy) };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

async function readConfig(path: string, state: PkiState): Promise<ArchiveEntry> {
  const config = await loadRelayConfig(path);
  if (resolve(config.state) !== resolve(state.stateDir)) {
    throw new DmzError(
      'CLI_ERR_INVALID_ARGUMENT',
      `--config ${quote(path)} is the configuration of a relay on ${quote(config.state)}, not on ${quote(state.stateDir)}`,
      { hint: 'give the configuration of the relay that runs on this state directory' },
    );
  }
  try {
    return { kind: 'config', name: CONFIG_ENTRY, contents: await readFile(path) };
  } catch (cause) {
    throw fileError('read the relay configuration', path, cause);
  }
}

/**
 * Written aside, flushed, then linked into place: link(2) refuses an existing name, so an earlier
 * backup is never overwritten, and the name appears only once the file is whole.
 */
async function writeBackupFile(path: string, contents: Buffer): Promise<void> {
  const aside = asidePath(path);
  try {
    await rm(aside, { force: true });
    await writeNewFileFlushed(aside, contents);
    await link(aside, path);
    await syncDirectory(dirname(path));
  } catch (cause) {
    throw fileError('write the backup', path, cause, {
      EEXIST: 'give a new file name: a backup never overwrites a file',
    });
  } finally {
    await rm(aside, { force: true });
  }
}

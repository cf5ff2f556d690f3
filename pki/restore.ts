/**
 * `dmz-pki restore`'s work: a backup (backup.ts) brought back into an empty state directory on a
 * new appliance. Nothing is written until the whole file has been authenticated and its contents
 * checked; then every file is created exclusively with the state's modes (0600 in a 0700
 * directory) and flushed, and a restore that fails or is interrupted half way removes what it
 * wrote, so it can simply be run again.
 *
 * Tokens outstanding in the backup are revoked at once: any of them may have been redeemed on the
 * old appliance after the backup was taken, and the restored store would let it be used again.
 * Likewise the CRL number is raised above any the old appliance can have published since.
 *
 * The PKI audit log comes back as the backup holds it, and the restore's own record follows it
 * (audit-log.ts): the chain goes on across the restore, and what the old appliance recorded
 * after the backup is not in it. Nothing is overwritten: the directory was empty.
 */
import { lstat, readdir, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  fileError,
  firstMissingDirectory,
  quote,
  removeOnInterrupt,
} from '../relay/protocol/command-line.ts';
import {
  createPrivateDirectory,
  syncDirectory,
  writeNewFileFlushed,
} from '../relay/protocol/durable-files.ts';
import { DmzError } from '../relay/protocol/errors.ts';
import { refuseOpenPermissions } from '../relay/protocol/file-permissions.ts';
import { loadRelayConfig } from '../relay/server/config.ts';
import { CONFIG_ENTRY, decodeArchive, type BackupArchive } from './backup-archive.ts';
import { CommandAudit } from './audit-trail.ts';
import { openBackup } from './backup-envelope.ts';
import { DATABASE_SIDE_FILES, STATE_FILES } from './state-layout.ts';
import { openState } from './state.ts';

/** Far above any CA's state (a million certificate records are about 2 GB less than this allows). */
export const MAX_BACKUP_BYTES = 1024 * 1024 * 1024;

export interface RestoreOptions {
  /** The backup file's bytes. */
  readonly file: Buffer;
  readonly passphrase: string;
  /** Must not exist, or be an empty directory. */
  readonly stateDir: string;
  /** Where the relay's configuration goes; default `relay.yaml` in the state directory. */
  readonly configPath?: string;
  /** The backup file's path, for the restore's audit record. */
  readonly source?: string;
}

export interface RestoreSummary {
  readonly stateDir: string;
  readonly trustDomain: string;
  readonly caFingerprint: string;
  readonly backupCreatedAt: Date;
  readonly files: readonly string[];
  /** Where the relay's configuration was written, if the backup held one. */
  readonly configPath: string | undefined;
  /**
   * The state directory that configuration names (resolved), when it loads: the old appliance's,
   * which need not be where this restore wrote.
   */
  readonly configStateDir: string | undefined;
  readonly tokensRevoked: number;
}

/** Refused before the passphrase is even tried: nothing is ever restored over something. */
export async function refuseNonEmptyTarget(stateDir: string, configPath: string | undefined): Promise<void> {
  const entries = await readdir(stateDir).catch((cause: unknown) => {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw fileError('read the state directory', stateDir, cause);
  });
  if (entries.length > 0) {
    throw new DmzError('PKI_ERR_RESTORE_NOT_EMPTY', `${quote(stateDir)} is not empty`, {
      hint: 'restore into a new or empty directory; a CA already there is left as it is',
    });
  }
  // An empty directory that exists must already be private: restore would not loosen it, nor chmod
  // it. And this user's: the files would be this user's, which a relay running as its owner could
  // not read, and that owner could plant links in it (SQLite's -wal file) while restore writes.
  const target = await stat(stateDir).catch(() => undefined);
  if (target !== undefined) refuseOpenPermissions(stateDir);
  // A link that leads nowhere: mkdir would fail on it, and the clean-up would take it for its own.
  if (target === undefined && (await lstat(stateDir).catch(() => undefined)) !== undefined) {
    throw fileError('restore into', stateDir, Object.assign(new Error(), { code: 'ENOENT' }), {
      ENOENT: 'it is a symbolic link to nothing: create the directory it names, or give another path',
    });
  }
  // lstat: a symbolic link, even one that leads nowhere, is something there, never written through.
  if (configPath !== undefined && (await lstat(configPath).catch(() => undefined)) !== undefined) {
    throw fileError(
      'write the relay configuration',
      configPath,
      Object.assign(new Error(), { code: 'EEXIST' }),
      {
        EEXIST: 'give a path that does not exist: restore never overwrites a file',
      },
    );
  }
}

export async function restoreBackup(options: RestoreOptions): Promise<RestoreSummary> {
  const { stateDir } = options;
  await refuseNonEmptyTarget(stateDir, options.configPath);
  if (options.file.length > MAX_BACKUP_BYTES) {
    throw new DmzError('PKI_ERR_BACKUP_DAMAGED', 'the file is larger than any backup this program writes');
  }
  const archive = decodeArchive(await openBackup(options.file, options.passphrase));
  const hasConfig = archive.entries.some((entry) => entry.kind === 'config');
  const configPath = hasConfig ? (options.configPath ?? join(stateDir, CONFIG_ENTRY)) : undefined;
  const tokensRevoked = await writeArchive(archive, stateDir, configPath, options.source);
  // A configuration this release cannot load is the relay's to explain when it starts.
  const config =
    configPath === undefined ? undefined : await loadRelayConfig(configPath).catch(() => undefined);
  return {
    stateDir: resolve(stateDir),
    trustDomain: archive.trustDomain,
    caFingerprint: archive.caFingerprint,
    backupCreatedAt: archive.createdAt,
    files: archive.entries.filter((entry) => entry.kind === 'state').map((entry) => entry.name),
    configPath: configPath === undefined ? undefined : resolve(configPath),
    configStateDir: config === undefined ? undefined : resolve(config.state),
    tokensRevoked,
  };
}

/** Writes every file, then checks the result; returns the number of tokens revoked. */
async function writeArchive(
  archive: BackupArchive,
  stateDir: string,
  configPath: string | undefined,
  source: string | undefined,
): Promise<number> {
  const written: string[] = [];
  // The file being created: this restore's once its exclusive create has succeeded.
  let creating: string | undefined;
  const createdDirectory = firstMissingDirectory(stateDir);
  // Removed on failure and on Ctrl-C alike: what this restore created, and nothing else. Another
  // process may put a file into the directory (or at --config) after the check that it was empty:
  // the exclusive create then refuses it, and it stays.
  const database = join(stateDir, STATE_FILES.database);
  const leftovers = () => [
    ...(createdDirectory === undefined ? [] : [createdDirectory]),
    ...written,
    ...(creating === undefined ? [] : [creating]),
    // What SQLite adds beside pki.db when checkRestoredState opens it.
    ...(written.includes(database) ? DATABASE_SIDE_FILES.map((name) => join(stateDir, name)) : []),
  ];
  const keepOnInterrupt = removeOnInterrupt(leftovers);
  try {
    await createPrivateDirectory(stateDir);
    for (const entry of archive.entries) {
      const path = entry.kind === 'config' ? (configPath ?? '') : join(stateDir, entry.name);
      creating = path;
      try {
        await writeNewFileFlushed(path, entry.contents);
      } catch (cause) {
        if ((cause as NodeJS.ErrnoException).code === 'EEXIST') creating = undefined;
        throw fileError('restore', path, cause, {
          EEXIST: 'something was put there after restore checked the target: nothing was restored',
        });
      }
      written.push(path);
      creating = undefined;
    }
    await syncDirectory(stateDir);
    return await checkRestoredState(stateDir, archive, source);
  } catch (cause) {
    await Promise.all(leftovers().map((path) => rm(path, { recursive: true, force: true })));
    throw cause instanceof DmzError ? cause : fileError('restore into', stateDir, cause);
  } finally {
    keepOnInterrupt();
  }
}

/**
 * Opens what was written as the relay will; revokes the tokens that may have been spent since and
 * moves the CRL number past any published since.
 */
async function checkRestoredState(
  stateDir: string,
  archive: BackupArchive,
  source: string | undefined,
): Promise<number> {
  const state = await openState(stateDir);
  try {
    if (state.caFingerprint !== archive.caFingerprint || state.trustDomain !== archive.trustDomain) {
      throw new DmzError('PKI_ERR_BACKUP_DAMAGED', "the restored store does not name the backup's CA");
    }
    const outstanding = state.store.listTokens();
    // The restore's own record commits with what it changes; one that cannot be written fails the
    // restore, which then removes everything it wrote.
    const audit = new CommandAudit(state, 'restore');
    audit.about({
      ...(source === undefined ? {} : { file: source }),
      backupCreatedAt: archive.createdAt.toISOString(),
      tokensRevoked: outstanding.length,
    });
    audit.commit(() => {
      for (const token of outstanding) state.store.revokeToken(token.jti);
      // RFC 5280 section 5.2.3: a CA's CRL numbers only ever grow, and the CRL is exported to
      // whoever checks certificates (`dmz-pki crl`). The old appliance may have published CRLs
      // after the backup; counted from 0, one at a time, each costing a signature and an fsync
      // (more than a millisecond), it cannot have passed the milliseconds since 1970.
      state.store.raiseCrlNumber(Date.now());
    });
    return outstanding.length;
  } finally {
    state.close();
  }
}

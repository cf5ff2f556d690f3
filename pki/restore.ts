/**
 * `dmz-pki restore`'s work: a backup (backup.ts) brought back into an empty state directory on a
 * new appliance. Nothing is written until the whole file has been authenticated and its contents
 * checked; then every file is created exclusively with the state's modes (0600 in a 0700
 * directory) and flushed, and a restore that fails or is interrupted half way removes what it
 * wrote, so it can simply be run again.
 *
 * Tokens outstanding in the backup are revoked at once: any of them may have been redeemed on the
 * old appliance after the backup was taken, and the restored store would let it be used again.
 */
import { readdirSync } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
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
import { CONFIG_ENTRY, decodeArchive, type BackupArchive } from './backup-archive.ts';
import { openBackup } from './backup-envelope.ts';
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
}

export interface RestoreSummary {
  readonly stateDir: string;
  readonly trustDomain: string;
  readonly caFingerprint: string;
  readonly backupCreatedAt: Date;
  readonly files: readonly string[];
  /** Where the relay's configuration was written, if the backup held one. */
  readonly configPath: string | undefined;
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
  // An empty directory that exists must already be private: restore would not loosen it, nor chmod it.
  if (entries.length === 0 && (await stat(stateDir).catch(() => undefined)) !== undefined) {
    refuseOpenPermissions(stateDir, { owner: 'any' });
  }
  if (configPath !== undefined && (await stat(configPath).catch(() => undefined)) !== undefined) {
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
  const tokensRevoked = await writeArchive(archive, stateDir, configPath);
  return {
    stateDir: resolve(stateDir),
    trustDomain: archive.trustDomain,
    caFingerprint: archive.caFingerprint,
    backupCreatedAt: archive.createdAt,
    files: archive.entries.filter((entry) => entry.kind === 'state').map((entry) => entry.name),
    configPath: configPath === undefined ? undefined : resolve(configPath),
    tokensRevoked,
  };
}

/** Writes every file, then checks the result; returns the number of tokens revoked. */
async function writeArchive(
  archive: BackupArchive,
  stateDir: string,
  configPath: string | undefined,
): Promise<number> {
  const written: string[] = [];
  const createdDirectory = firstMissingDirectory(stateDir);
  // Removed on failure and on Ctrl-C alike: the directory if this made it, else everything in it
  // (it was empty: SQLite's -wal and -shm files of the check are this restore's too).
  const leftovers = () =>
    createdDirectory !== undefined
      ? [createdDirectory, ...written]
      : [...written, ...readdirSync(stateDir).map((name) => join(stateDir, name))];
  const keepOnInterrupt = removeOnInterrupt(leftovers);
  try {
    await createPrivateDirectory(stateDir);
    for (const entry of archive.entries) {
      const path = entry.kind === 'config' ? (configPath ?? '') : join(stateDir, entry.name);
      written.push(path);
      await writeNewFileFlushed(path, entry.contents);
    }
    await syncDirectory(stateDir);
    return await checkRestoredState(stateDir, archive);
  } catch (cause) {
    await Promise.all(leftovers().map((path) => rm(path, { recursive: true, force: true })));
    throw cause instanceof DmzError ? cause : fileError('restore into', stateDir, cause);
  } finally {
    keepOnInterrupt();
  }
}

/** Opens what was written as the relay will, and revokes the tokens that may have been spent since. */
async function checkRestoredState(stateDir: string, archive: BackupArchive): Promise<number> {
  const state = await openState(stateDir);
  try {
    if (state.caFingerprint !== archive.caFingerprint || state.trustDomain !== archive.trustDomain) {
      throw new DmzError('PKI_ERR_BACKUP_DAMAGED', "the restored store does not name the backup's CA");
    }
    const outstanding = state.store.listTokens();
    for (const token of outstanding) state.store.revokeToken(token.jti);
    return outstanding.length;
  } finally {
    state.close();
  }
}

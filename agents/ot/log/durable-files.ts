/**
 * Crash-safe file creation for the stream log: a new file is written aside, flushed, renamed into
 * place, and the directory flushed, so after a power loss it is either absent or whole (the
 * rename(2) and fsync(2) ordering every journaling database relies on).
 */
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { logError, storageFailure } from './log-errors.ts';

/** Plant data and the log's own state are for the agent's user alone. */
export const LOG_FILE_MODE = 0o600;
export const LOG_DIRECTORY_MODE = 0o700;
const GROUP_OR_WORLD = 0o077;
/** Files a crash may leave half-written; a reopen removes them. */
export const TEMPORARY_SUFFIX = '.tmp';

export async function writeFileDurably(dir: string, name: string, contents: Uint8Array): Promise<void> {
  const aside = join(dir, `${name}${TEMPORARY_SUFFIX}`);
  try {
    await rm(aside, { force: true });
    const handle = await open(aside, 'wx', LOG_FILE_MODE);
    try {
      await handle.writeFile(contents);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(aside, join(dir, name));
    await syncDirectory(dir);
  } catch (cause) {
    throw storageFailure(`writing ${name}`, cause);
  }
}

/** A rename, a create or an unlink survives a power loss only once its directory is flushed. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Creates the log directory (0700) if needed and refuses one that others can enter or that is not
 * this user's: the log holds plant data, and a directory others can write lets them plant segments.
 */
export async function preparePrivateDirectory(dir: string): Promise<void> {
  let created: string | undefined;
  try {
    created = await mkdir(dir, { recursive: true, mode: LOG_DIRECTORY_MODE });
    if (created !== undefined) await syncDirectory(dirname(created));
  } catch (cause) {
    throw storageFailure('creating the log directory', cause);
  }
  const info = await stat(dir);
  if (!info.isDirectory()) throw storageFailure('opening the log directory', new Error('not a directory'));
  // POSIX mode bits and owners mean nothing on Windows; there the directory's ACL is the operator's job.
  if (process.platform === 'win32') return;
  if ((info.mode & GROUP_OR_WORLD) !== 0 || info.uid !== process.getuid?.()) {
    throw logError(
      'permissions',
      'the stream log directory must belong to this user and be open to it alone',
      {
        hint: `chmod 700 ${dir} (and chown it to this user)`,
      },
    );
  }
}

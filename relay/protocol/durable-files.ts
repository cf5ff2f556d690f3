/**
 * Crash-safe writes, for every file whose loss or tearing would hurt: the CA's state (the files
 * `dmz-pki init` makes, the CRL), an agent's credentials, the stream log's segments, indexes and
 * checkpoint. A file is created exclusively (0600 from its first byte, never readable by others
 * even for a moment), written and flushed; a replacement is written aside and renamed into place;
 * then the directory is flushed. After a power loss a file is absent or whole, old or new: the
 * rename(2) and fsync(2) ordering every journaling database relies on.
 */
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { PRIVATE_DIRECTORY_MODE, PRIVATE_FILE_MODE } from './file-permissions.ts';

/** The ending of files a crash may leave half-written; whoever owns the directory may remove them. */
export const TEMPORARY_SUFFIX = '.tmp';

/**
 * Where replaceFileDurably writes `path` first: one per process, so two processes never share it,
 * and replacements of one path within a process take turns (replaceFileDurably).
 */
export function asidePath(path: string): string {
  return `${path}.${process.pid}${TEMPORARY_SUFFIX}`;
}

/**
 * A file's contents: whole, or as parts written one after another (a file larger than one string
 * may be, such as the recent-values snapshot, is never held whole).
 */
export type FileContents = string | Uint8Array | Iterable<string>;

/**
 * Creates `path` exclusively (refused when it exists), writes and flushes it. Its name survives a
 * power loss once its directory is synced too (syncDirectory).
 */
export async function writeNewFileFlushed(path: string, contents: FileContents): Promise<void> {
  const handle = await open(path, 'wx', PRIVATE_FILE_MODE);
  try {
    const parts = typeof contents === 'string' || contents instanceof Uint8Array ? [contents] : contents;
    // Each part from where the last ended: writeFile on a handle writes at its current position.
    for (const part of parts) await handle.writeFile(part);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Replacements under way, by absolute path: the last one's settling, for the next to wait on. */
const replacing = new Map<string, Promise<void>>();

/**
 * Creates or replaces `path` atomically and durably: readers and a crash see the old or the new,
 * whole. Replacements of one path in this process run one after another, in call order: at once,
 * they would share the aside file, and one would remove another's half-written file or rename it
 * into place.
 */
export function replaceFileDurably(path: string, contents: FileContents): Promise<void> {
  const key = resolve(path);
  const replaced = (replacing.get(key) ?? Promise.resolve()).then(() => replaceNow(path, contents));
  const settled = replaced.then(
    () => undefined,
    () => undefined,
  );
  replacing.set(key, settled);
  void settled.then(() => {
    if (replacing.get(key) === settled) replacing.delete(key);
  });
  return replaced;
}

async function replaceNow(path: string, contents: FileContents): Promise<void> {
  const aside = asidePath(path);
  await rm(aside, { force: true });
  await writeNewFileFlushed(aside, contents);
  await rename(aside, path);
  await syncDirectory(dirname(path));
}

/** A rename, a create or an unlink survives a power loss only once its directory is flushed. */
export async function syncDirectory(dir: string): Promise<void> {
  // Windows cannot open a directory to flush it; there a rename is as durable as NTFS makes it.
  if (process.platform === 'win32') return;
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Creates `dir` (0700) and any missing parents, the new directory made durable in its parent;
 * refuses a path that is no directory (EEXIST, as mkdir -p says it). Returns the first directory it created, for a caller to
 * remove on failure. Whether an existing one is private is refuseOpenPermissions' to say.
 */
export async function createPrivateDirectory(dir: string): Promise<string | undefined> {
  const created = await mkdir(dir, { recursive: true, mode: PRIVATE_DIRECTORY_MODE });
  if (created !== undefined) await syncDirectory(dirname(created));
  if (!(await stat(dir)).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'EEXIST' });
  return created;
}

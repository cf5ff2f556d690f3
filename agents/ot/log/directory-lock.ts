/**
 * One writer per log directory: two agents appending to one log would interleave frames and reuse
 * sequence numbers. The lock is a file holding the holder's pid, created exclusively; a lock whose
 * process is gone (an agent killed with SIGKILL, a power loss) is stale and taken over. The same
 * scheme as relay/server/state-lock.ts, which guards the relay's state directory.
 */
import { open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { LOG_FILE_MODE } from './durable-files.ts';
import { logError, storageFailure } from './log-errors.ts';

export const LOCK_FILE = 'log.lock';
/** A stale lock taken over can race a third process doing the same; give up after this many. */
const MAX_TAKEOVER_ATTEMPTS = 3;

export interface DirectoryLock {
  release(): Promise<void>;
}

export async function lockLogDirectory(dir: string): Promise<DirectoryLock> {
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < MAX_TAKEOVER_ATTEMPTS; attempt += 1) {
    try {
      const handle = await open(path, 'wx', LOG_FILE_MODE);
      try {
        await handle.writeFile(`${process.pid}\n`);
      } finally {
        await handle.close();
      }
      return {
        async release() {
          // Only our own lock: one removed by hand and taken by another process stays theirs.
          if ((await readHolder(path)) === process.pid) await rm(path, { force: true });
        },
      };
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code !== 'EEXIST') throw storageFailure('locking the log', cause);
    }
    const holder = await readHolder(path);
    // Our own pid: another StreamLog in this process has the directory open.
    if (holder !== undefined && isAlive(holder)) {
      throw logError('locked', `another process (pid ${holder}) has this stream log open`, {
        hint: `stop it first; if pid ${holder} is no agent, remove ${path}`,
      });
    }
    // Stale, or unreadable (half-written by a process that died at once): take it over.
    await rm(path, { force: true });
  }
  throw logError('locked', 'the stream log lock changed hands while it was being taken');
}

async function readHolder(path: string): Promise<number | undefined> {
  try {
    const pid = Number((await readFile(path, 'utf8')).trim());
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else; it still holds the lock.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

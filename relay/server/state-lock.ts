/**
 * One relay per state directory. Two relays on one CA state would each publish CRLs, each consume
 * tokens and each open the enrollment port: the second must refuse to start, saying which process
 * holds the state. The lock is a file holding the holder's pid, created exclusively; a lock whose
 * process is gone (a relay killed with SIGKILL, a power loss) is stale and taken over.
 * (Relays that share state on a distributed store are a later design, not this file's.)
 */
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { quote } from '../protocol/command-line.ts';
import { DmzError } from '../protocol/errors.ts';

export const STATE_LOCK_FILE = 'relay.lock';
const LOCK_FILE_MODE = 0o600;
/** A lock taken over from a dead holder can race a third relay doing the same; retry this often. */
const MAX_TAKEOVER_ATTEMPTS = 3;

export interface StateLock {
  readonly path: string;
  /** Whether a stale lock (its process gone) was taken over. */
  readonly tookOverFrom: number | undefined;
  release(): void;
}

export function lockStateDirectory(stateDir: string, pid = process.pid): StateLock {
  const path = join(stateDir, STATE_LOCK_FILE);
  let tookOverFrom: number | undefined;
  for (let attempt = 0; attempt < MAX_TAKEOVER_ATTEMPTS; attempt += 1) {
    let fd: number;
    try {
      fd = openSync(path, 'wx', LOCK_FILE_MODE);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw lockFailure(path, error);
      const holder = readHolder(path);
      if (holder !== undefined && holder !== pid && isAlive(holder)) {
        throw new DmzError(
          'RELAY_ERR_STATE_LOCKED',
          `another relay (pid ${holder}) is running on the state directory ${quote(stateDir)}`,
          {
            hint: `stop it first, or give this relay a state directory of its own; if pid ${holder} is no relay, remove ${quote(path)}`,
          },
        );
      }
      // Stale (or unreadable, half-written by a relay that died at once): take it over.
      tookOverFrom = holder;
      rmSync(path, { force: true });
      continue;
    }
    try {
      writeSync(fd, `${pid}\n`);
    } finally {
      closeSync(fd);
    }
    return {
      path,
      tookOverFrom,
      release() {
        // Only our own lock: a relay that lost it (removed by hand) must not remove another's.
        if (readHolder(path) === pid) rmSync(path, { force: true });
      },
    };
  }
  throw lockFailure(path, new Error('the lock changed hands while it was being taken'));
}

function readHolder(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
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

function lockFailure(path: string, cause: unknown): DmzError {
  const reason = (cause as NodeJS.ErrnoException).code ?? (cause as Error).message;
  return new DmzError('RELAY_ERR_STATE_LOCKED', `cannot create the state lock ${quote(path)}: ${reason}`, {
    cause,
    hint: 'the relay needs write access to its state directory',
  });
}

/**
 * One relay per state directory. Two relays on one CA state would each publish CRLs, each consume
 * tokens and each open the enrollment port: the second must refuse to start, saying which process
 * holds the state. The lock is a file created exclusively, naming the holder: its pid, the boot it
 * ran in (Linux: /proc/sys/kernel/random/boot_id) and its command line (/proc/<pid>/cmdline). A
 * lock is stale, and taken over, unless its holder still runs: a lock from an earlier boot (a power
 * loss) is stale whatever process has that pid now, and so is one whose pid now belongs to another
 * program (pid 1 after a reboot in a container): under systemd's Restart=on-failure a relay that
 * refused such a lock would never come back. Without /proc, a live pid is taken to be the holder.
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
  /** The pid of a stale lock's holder (gone, or its pid reused) when one was taken over. */
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
      const record = readHolder(path);
      const holder = record?.pid;
      if (record !== undefined && record.pid !== pid && holdsLock(record)) {
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
      writeSync(fd, `${JSON.stringify(describeHolder(pid))}\n`);
    } finally {
      closeSync(fd);
    }
    return {
      path,
      tookOverFrom,
      release() {
        // Only our own lock: a relay that lost it (removed by hand) must not remove another's.
        if (readHolder(path)?.pid === pid) rmSync(path, { force: true });
      },
    };
  }
  throw lockFailure(path, new Error('the lock changed hands while it was being taken'));
}

/** What a lock file says about its holder; `bootId` and `command` are absent without /proc. */
export interface LockHolder {
  readonly pid: number;
  readonly bootId?: string;
  readonly command?: string;
}

/** The record a lock taken by `pid` holds (exported for tests that fake a holder). */
export function describeHolder(pid: number): LockHolder {
  const bootId = readProc('/proc/sys/kernel/random/boot_id')?.trim();
  const command = readProc(`/proc/${pid}/cmdline`);
  return { pid, ...(bootId === undefined ? {} : { bootId }), ...(command === undefined ? {} : { command }) };
}

function readHolder(path: string): LockHolder | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
  // A bare pid: the format of earlier versions.
  if (/^\d+$/.test(text)) return validPid(Number(text)) ? { pid: Number(text) } : undefined;
  try {
    const record = JSON.parse(text) as Partial<Record<keyof LockHolder, unknown>>;
    if (typeof record.pid !== 'number' || !validPid(record.pid)) return undefined;
    return {
      pid: record.pid,
      ...(typeof record.bootId === 'string' ? { bootId: record.bootId } : {}),
      ...(typeof record.command === 'string' ? { command: record.command } : {}),
    };
  } catch {
    return undefined;
  }
}

function validPid(pid: number): boolean {
  return Number.isSafeInteger(pid) && pid > 0;
}

/** Whether the process the lock names is still the relay that took it. */
function holdsLock(record: LockHolder): boolean {
  if (!isAlive(record.pid)) return false;
  const now = describeHolder(record.pid);
  // A lock from another boot: its holder died with that boot, whatever has its pid now.
  if (record.bootId !== undefined && now.bootId !== undefined && record.bootId !== now.bootId) return false;
  // No /proc (or hidden by hidepid): a live pid is all there is to go on.
  if (now.command === undefined) return true;
  if (record.command !== undefined) return record.command === now.command;
  // A lock of the bare-pid format: only a process that looks like a relay holds it.
  return /dmz-relay|relay[\\/]cli/.test(now.command);
}

function readProc(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
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

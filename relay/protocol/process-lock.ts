/**
 * One process at a time on a directory that must have a single writer: the relay's state (two
 * relays would each publish CRLs and consume tokens) and an OT agent's stream log (two writers
 * would interleave frames and reuse sequence numbers). The lock is a file created exclusively,
 * naming its holder: its pid, the boot it ran in (Linux: /proc/sys/kernel/random/boot_id) and its
 * command line (/proc/<pid>/cmdline). A lock is stale, and taken over, unless its holder still
 * runs: one from an earlier boot (a power loss) is stale whatever process has that pid now, and so
 * is one whose pid now belongs to another program (pid 1 after a restart in a container): under
 * systemd's Restart=on-failure a program that refused such a lock would never come back. Without
 * /proc, a live pid is taken to be the holder.
 */
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { resolve } from 'node:path';
import { PRIVATE_FILE_MODE } from './file-permissions.ts';

/** A lock taken over from a dead holder can race a third process doing the same; retry this often. */
const MAX_TAKEOVER_ATTEMPTS = 3;

/**
 * How the programs that take locks look in /proc/<pid>/cmdline: the installed command, or its
 * source file run from a checkout. For ProcessLockRules.program.
 */
export const PROGRAM_COMMAND_LINES = {
  relay: /dmz-relay|relay[\\/]cli/,
  agent: /dmz-agent|agents[\\/]cli/,
} as const;

export interface ProcessLock {
  readonly path: string;
  /** The pid of a stale lock's holder (gone, or its pid reused) when one was taken over. */
  readonly tookOverFrom: number | undefined;
  release(): void;
}

/** The errors of one user of the lock, in its own catalog codes and words. */
export interface LockErrors {
  /** Another live process (or, under `sameProcess: 'refuse'`, this one) holds the lock. */
  held(holderPid: number): Error;
  /** The lock file cannot be created or written (no write access, a full disk). */
  unwritable(cause: unknown): Error;
  /** Stale locks kept reappearing while this one was being taken. */
  contended(): Error;
}

export interface ProcessLockRules {
  /**
   * What the holder's command line looks like: how a lock of the bare-pid format (earlier
   * versions, no command recorded) is told apart from a pid another program has now.
   */
  readonly program: RegExp;
  /**
   * A second taker in this same process while the first holds the lock: refused (`refuse`), or
   * it takes the lock over (`take over`, a relay restarted in-process on its own state). Either
   * way, a lock naming this pid that this process does not hold was left by an earlier process
   * that had the same pid, and is stale.
   */
  readonly sameProcess: 'refuse' | 'take over';
  readonly errors: LockErrors;
}

/** What a lock file says about its holder; `bootId` and `command` are absent without /proc. */
export interface LockHolder {
  readonly pid: number;
  readonly bootId?: string;
  readonly command?: string;
}

/** Lock files (resolved paths) this process holds now. */
const heldByThisProcess = new Set<string>();

export function takeProcessLock(path: string, rules: ProcessLockRules): ProcessLock {
  const key = resolve(path);
  let tookOverFrom: number | undefined;
  for (let attempt = 0; attempt < MAX_TAKEOVER_ATTEMPTS; attempt += 1) {
    let fd: number;
    try {
      fd = openSync(path, 'wx', PRIVATE_FILE_MODE);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw rules.errors.unwritable(error);
      const holder = readHolder(path);
      if (holder !== undefined && isHeld(holder, key, rules)) throw rules.errors.held(holder.pid);
      // Stale (or unreadable, half-written by a process that died at once): take it over.
      tookOverFrom = holder?.pid;
      rmSync(path, { force: true });
      continue;
    }
    try {
      writeSync(fd, `${JSON.stringify(describeHolder(process.pid))}\n`);
    } catch (error) {
      rmSync(path, { force: true });
      throw rules.errors.unwritable(error);
    } finally {
      closeSync(fd);
    }
    heldByThisProcess.add(key);
    return {
      path,
      tookOverFrom,
      release() {
        heldByThisProcess.delete(key);
        // Only our own lock: one removed by hand and taken by another process stays theirs.
        if (readHolder(path)?.pid === process.pid) rmSync(path, { force: true });
      },
    };
  }
  throw rules.errors.contended();
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

function isHeld(holder: LockHolder, key: string, rules: ProcessLockRules): boolean {
  if (holder.pid === process.pid) return rules.sameProcess === 'refuse' && heldByThisProcess.has(key);
  return holdsLock(holder, rules.program);
}

/** Whether the process the lock names is still the program that took it. */
function holdsLock(record: LockHolder, program: RegExp): boolean {
  if (!isProcessAlive(record.pid)) return false;
  const now = describeHolder(record.pid);
  // A lock from another boot: its holder died with that boot, whatever has its pid now.
  if (record.bootId !== undefined && now.bootId !== undefined && record.bootId !== now.bootId) return false;
  // No /proc (or hidden by hidepid): a live pid is all there is to go on.
  if (now.command === undefined) return true;
  if (record.command !== undefined) return record.command === now.command;
  // A lock of the bare-pid format: only a process that looks like the program holds it.
  return program.test(now.command);
}

function readProc(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Whether a process with this pid exists (it may be another program than the one that had it). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

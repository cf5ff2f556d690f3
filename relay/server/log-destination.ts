/**
 * Where the debug and audit logs write: a file descriptor, written synchronously. A log line is
 * never buffered past its call, so nothing is lost when the process exits and there is nothing to
 * flush on the way out; and a write never throws: a reader that went away (EPIPE, a closed
 * journald pipe), a full disk or a broken file costs the line, counted, never the relay. Logging
 * must neither crash the process nor keep it alive (an async stream retrying a dead pipe did).
 *
 * The relay logs events (connections, refusals, reloads), not frames: a few lines a second, so a
 * synchronous write costs nothing the hot path would notice. Refusal floods are aggregated
 * before they reach here (refusal-audit.ts).
 */
import { closeSync, existsSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { pino, type Logger } from 'pino';
import { fileError } from '../protocol/command-line.ts';
import { DmzError } from '../protocol/errors.ts';
import { PRIVATE_DIRECTORY_MODE, PRIVATE_FILE_MODE } from '../protocol/file-permissions.ts';

/** A pipe whose reader is slow answers EAGAIN: waited for this long, in steps, before a line is dropped. */
const EAGAIN_WAIT_MS = 100;
const EAGAIN_STEP_MS = 1;
/** Errors after which the descriptor is given up: nothing written to it can arrive. */
const FATAL_CODES: ReadonlySet<string> = new Set(['EPIPE', 'EBADF', 'ECONNRESET', 'EINVAL']);

export interface LogDestination {
  write(line: string): void;
  /** Lines that could not be written. */
  readonly dropped: number;
  close(): void;
  /**
   * Closes, and removes the file and the directories opening it created if not a line was
   * written: a relay that failed to start leaves nothing behind.
   */
  discard(): void;
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

export function fdDestination(
  fd: number,
  options: { readonly closeOnEnd?: boolean; readonly onDiscard?: () => void } = {},
): LogDestination {
  let broken = false;
  let dropped = 0;
  let written = false;
  const close = () => {
    if (options.closeOnEnd !== true || broken) return;
    broken = true;
    try {
      closeSync(fd);
    } catch {
      // Closing a log file at exit has no one left to tell.
    }
  };
  return {
    write(line) {
      written = true;
      if (broken) {
        dropped += 1;
        return;
      }
      const bytes = Buffer.from(line);
      let offset = 0;
      let waited = 0;
      while (offset < bytes.length) {
        try {
          offset += writeSync(fd, bytes, offset);
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code ?? '';
          if (code === 'EAGAIN' && waited < EAGAIN_WAIT_MS) {
            Atomics.wait(sleeper, 0, 0, EAGAIN_STEP_MS);
            waited += EAGAIN_STEP_MS;
            continue;
          }
          if (FATAL_CODES.has(code)) broken = true;
          dropped += 1;
          return;
        }
      }
    },
    get dropped() {
      return dropped;
    },
    close,
    discard() {
      close();
      if (!written) options.onDiscard?.();
    },
  };
}

/**
 * Opens (appends to) a log file, creating its directory 0700. Opened now, synchronously: a path
 * that cannot be written fails the start, naming the file and the setting that gave it.
 */
export function fileDestination(path: string, setting: string): LogDestination {
  let fd: number;
  let createdDirectory: string | undefined;
  const existed = existsSync(path);
  try {
    // Audit files hold who connected from where: the relay user's alone.
    createdDirectory = mkdirSync(dirname(path), { recursive: true, mode: PRIVATE_DIRECTORY_MODE });
    fd = openSync(path, 'a', PRIVATE_FILE_MODE);
  } catch (error) {
    if (createdDirectory !== undefined) rmSync(createdDirectory, { recursive: true, force: true });
    // mkdir -p over a file on the path says EEXIST: to the operator, a part is not a directory.
    const cause =
      (error as NodeJS.ErrnoException).code === 'EEXIST'
        ? Object.assign(error as Error, { code: 'ENOTDIR' })
        : error;
    const failure = fileError(`open the log file (${setting})`, path, cause);
    throw new DmzError('RELAY_ERR_LOG', failure.message, {
      cause,
      hint: `make its directory writable by the relay's user, or change ${setting}`,
    });
  }
  return fdDestination(fd, {
    closeOnEnd: true,
    onDiscard: () => {
      if (createdDirectory !== undefined) rmSync(createdDirectory, { recursive: true, force: true });
      else if (!existed) rmSync(path, { force: true });
    },
  });
}

/** The relay's debug log: pino's JSON lines with ISO 8601 times, on standard error unless told. */
export function createDebugLog(
  level: string,
  destination: { write(line: string): void } = fdDestination(2),
): Logger {
  return pino({ level, base: { log: 'relay' }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}

/**
 * The PKI audit log: `pki-audit.jsonl` in the state directory (0600), one hash-chained record per
 * state-changing `dmz-pki` command (audit-record.ts). The relay keeps its own audit log of what it
 * does on the network (enrollments, renewals, refusals, the connections a revocation cuts); this
 * one is what people do to the CA on the appliance. Neither writes the other's events.
 *
 * A record is appended inside a store transaction (PkiStore.transaction), together with the
 * change it records and with the chain's head, which the store keeps too:
 *
 * - the store's write lock orders appends, so two `dmz-pki` at once never interleave a line or
 *   fork the chain (SQLite's lock, released by the kernel when a process dies: no lock file);
 * - the record is written and fdatasync'd before the change commits, and a record that cannot be
 *   written rolls the change back: nothing changes unaudited (fail closed);
 * - the head (the last record's number and hash) in the store shows a log cut short at its end,
 *   which a chain alone cannot. A record after the head is one the store never committed (a
 *   command cut between the two, or a restore: audit-log's records after the store was copied);
 *   the next record names them (`notInStore`), and `dmz-pki audit --verify` counts them.
 */
import {
  closeSync,
  constants,
  fdatasyncSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  openSync,
  readFileSync,
  readSync,
  writeSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileError, quote } from '../relay/protocol/command-line.ts';
import { DmzError } from '../relay/protocol/errors.ts';
import { PRIVATE_FILE_MODE } from '../relay/protocol/file-permissions.ts';
import {
  formatRecord,
  genesisLink,
  parseRecordLine,
  recordLine,
  type AuditEntry,
  type AuditRecord,
  type ChainLink,
  type NotInStore,
} from './audit-record.ts';
import { withholdSecrets } from './audit-secrets.ts';
import { AUDIT_LOG_FILE } from './state-layout.ts';
import type { PkiStore } from './store.ts';

/** The store's meta key for the chain's head: `<seq> <hash>`. */
const AUDIT_HEAD_META = 'audit_head';
/**
 * A line is a few hundred bytes; `revoke NAME` lists every serial it revoked, a few hundred at
 * most. The last line is looked for in chunks this size, back from the end.
 */
const TAIL_CHUNK_BYTES = 64 * 1024;
/** Far beyond any record; a bound, so a file without a newline is not read whole to append one. */
const MAX_RECORD_BYTES = 1024 * 1024;
const GROUP_OR_WORLD = 0o077;

/** What an append needs of the state: where it is, its store, and its CA (the chain's genesis). */
export interface AuditedState {
  readonly stateDir: string;
  readonly store: PkiStore;
  readonly caFingerprint: string;
}

export function auditLogPath(stateDir: string): string {
  return join(stateDir, AUDIT_LOG_FILE);
}

/**
 * Appends `entry` and moves the store's head to it. Must run inside `store.transaction`: the
 * caller's change and this record then commit together. Throws PKI_ERR_AUDIT_WRITE, having left
 * the file as it was, when the record cannot be written whole and flushed.
 */
export function appendAuditRecord(state: AuditedState, entry: AuditEntry, now = new Date()): AuditRecord {
  const path = auditLogPath(state.stateDir);
  const fd = openAuditLog(path);
  try {
    let size = fstatSync(fd).size;
    let tail = readLastLine(fd, size);
    if (tail !== undefined && !tail.terminated && tail.start !== undefined) {
      // A line without its newline was never committed: an append is flushed whole before its
      // change commits, so one cut short (a crash mid-write) recorded nothing that happened. It
      // goes, and the chain goes on from the line before; a committed record cut so shows as
      // missing, against the store's head.
      ftruncateSync(fd, tail.start);
      size = tail.start;
      tail = readLastLine(fd, size);
    }
    const last = tail === undefined ? undefined : parseRecordLine(tail.line);
    const stored = readAuditHead(state.store);
    // A damaged head is verify's to report; the chain goes on from the file.
    const head = stored === 'damaged' ? undefined : stored;
    const lastLink = last !== undefined && 'record' in last ? last.record : undefined;
    // A damaged last line is verify's to report; the chain goes on from what the store last knew.
    const previous: ChainLink = lastLink ?? head ?? genesisLink(state.caFingerprint);
    const committed = head?.seq ?? 0;
    const notInStore: NotInStore | undefined =
      lastLink !== undefined && lastLink.seq > committed
        ? { first: committed + 1, last: lastLink.seq }
        : undefined;
    const record = formatRecord(withholdSecrets(entry), previous, {
      time: now,
      host: hostname(),
      ...(notInStore === undefined ? {} : { notInStore }),
    });
    // A last line too long to look back over is left, and this record starts a line of its own.
    const newline = tail !== undefined && !tail.terminated ? '\n' : '';
    writeFlushed(fd, path, size, Buffer.from(`${newline}${recordLine(record)}\n`));
    // The file's name is durable only once its directory is: the first record makes the file.
    if (size === 0) syncDirectory(state.stateDir);
    state.store.setMeta(AUDIT_HEAD_META, `${record.seq} ${record.hash}`);
    return record;
  } finally {
    closeSync(fd);
  }
}

/**
 * Refuses, before a command changes anything, a log it could not append to: one that cannot be
 * opened or created for writing, or that is no regular file of this user's alone. Every command
 * that changes state checks this first (withAuditedState); one whose change is files (relay-cert,
 * crl, backup) also commits its record before it writes them (CommandAudit.commitBefore).
 */
export function checkAuditLogWritable(stateDir: string): void {
  closeSync(openAuditLog(auditLogPath(stateDir)));
}

/**
 * The log's bytes, as they are (verify checks them, not a decoding of them); undefined when there
 * is none. Read only from a regular file at the path itself, as appends are made: a FIFO would
 * hold the reader until someone writes, a device would never end, and a link would have
 * `audit` check, and `backup` keep, whatever it points to. PKI_ERR_AUDIT_BROKEN otherwise.
 */
export function readAuditLog(stateDir: string): Buffer | undefined {
  const path = auditLogPath(stateDir);
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO for reading waits for a writer without it.
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') throw broken(path, 'is a symbolic link', cause);
    throw fileError('read the audit log', path, cause);
  }
  try {
    if (!fstatSync(fd).isFile()) throw broken(path, 'is not a regular file');
    return readFileSync(fd);
  } catch (cause) {
    throw cause instanceof DmzError ? cause : fileError('read the audit log', path, cause);
  } finally {
    closeSync(fd);
  }
}

/**
 * The log's bytes as of one instant, read under the store's write lock so that no append is half
 * done: what a backup keeps.
 */
export function readAuditLogExclusively(state: AuditedState): Buffer | undefined {
  return state.store.transaction(() => readAuditLog(state.stateDir));
}

/** The store's head; `damaged` when its value is not one appendAuditRecord wrote. */
export function readAuditHead(store: PkiStore): ChainLink | 'damaged' | undefined {
  const value = store.getMeta(AUDIT_HEAD_META);
  if (value === undefined) return undefined;
  const head = /^(\d+) ([0-9a-f]{64})$/.exec(value);
  return head === null ? 'damaged' : { seq: Number(head[1]), hash: head[2] ?? '' };
}

function openAuditLog(path: string): number {
  let fd: number;
  try {
    // O_NOFOLLOW: a link planted in the state directory is never written through.
    const flags = constants.O_RDWR | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW;
    fd = openSync(path, flags, PRIVATE_FILE_MODE);
  } catch (cause) {
    throw unwritable(path, cause);
  }
  try {
    const info = fstatSync(fd);
    if (!info.isFile()) throw unwritable(path, Object.assign(new Error(), { code: 'NOT_A_FILE' }));
    if (process.platform !== 'win32' && (info.mode & GROUP_OR_WORLD) !== 0) {
      throw new DmzError('PKI_ERR_STATE_PERMISSIONS', `${quote(path)} is open to group or others`, {
        hint: `make it the owner's alone: chmod go-rwx ${quote(path)}`,
      });
    }
    return fd;
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}

/** Writes all of `bytes` at the end and flushes them; on failure cuts the file back to `size`. */
function writeFlushed(fd: number, path: string, size: number, bytes: Buffer): void {
  try {
    let written = 0;
    // A full disk takes part of a write and says so only in the count; the next write fails.
    while (written < bytes.length) written += writeSync(fd, bytes, written);
    fdatasyncSync(fd);
  } catch (cause) {
    try {
      ftruncateSync(fd, size);
    } catch {
      // The disk refuses even that: verify reports the torn line, and the next record starts anew.
    }
    throw unwritable(path, cause);
  }
}

interface LastLine {
  readonly line: string;
  /** Where it starts in the file; undefined when it is longer than MAX_RECORD_BYTES. */
  readonly start: number | undefined;
  readonly terminated: boolean;
}

/** The file's last line; undefined for an empty file. */
function readLastLine(fd: number, size: number): LastLine | undefined {
  if (size === 0) return undefined;
  const chunks: Buffer[] = [];
  let start = size;
  while (start > 0 && size - start <= MAX_RECORD_BYTES) {
    const length = Math.min(TAIL_CHUNK_BYTES, start);
    start -= length;
    const chunk = Buffer.alloc(length);
    readSync(fd, chunk, 0, length, start);
    chunks.unshift(chunk);
    const text = Buffer.concat(chunks);
    // The newline that ends the line before the last one, if this much holds it.
    const end = text[text.length - 1] === 0x0a ? text.length - 1 : text.length;
    const before = end === 0 ? -1 : text.lastIndexOf(0x0a, end - 1);
    if (before !== -1 || start === 0) {
      const line = text.subarray(before + 1, end).toString('utf8');
      return { line, start: start + before + 1, terminated: end < text.length };
    }
  }
  return { line: '', start: undefined, terminated: false };
}

function syncDirectory(dir: string): void {
  if (process.platform === 'win32') return;
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function broken(path: string, reason: string, cause?: unknown): DmzError {
  return new DmzError('PKI_ERR_AUDIT_BROKEN', `${quote(path)} ${reason}`, {
    ...(cause === undefined ? {} : { cause }),
    hint: 'put back the log, a regular file of this user (0600), from a copy kept off the appliance',
  });
}

function unwritable(path: string, cause: unknown): DmzError {
  const code = (cause as NodeJS.ErrnoException).code;
  // O_NOFOLLOW says ELOOP for a link, which the generic wording calls "too many symbolic links".
  const reason =
    code === 'ELOOP'
      ? 'it is a symbolic link'
      : code === 'NOT_A_FILE'
        ? 'it is not a regular file'
        : undefined;
  const message =
    reason === undefined
      ? fileError('append to the audit log', path, cause).message
      : `cannot append to the audit log ${quote(path)}: ${reason}`;
  return new DmzError('PKI_ERR_AUDIT_WRITE', message, {
    cause,
    hint: 'free space on its device, or make it a regular file of this user (0600), then run the command again',
  });
}

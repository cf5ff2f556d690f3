/**
 * One record of the PKI audit log (audit-log.ts): a JSON line per state-changing `dmz-pki`
 * command, who ran it, what it acted on and how it ended, chained to the record before it.
 *
 * Each line ends in the SHA-256 of everything before that ending, and carries the hash of the
 * line before it (`prev`):
 *
 *   {"seq":7,"time":"...",...,"prev":"<hash of record 6>","hash":"<SHA-256 of {"seq":7,...,"prev":"..."}>"}
 *
 * The hash is over the line's bytes as written, so checking needs no canonical form of JSON. A
 * record edited in place no longer matches its own hash; one rewritten with a new hash no longer
 * matches the `prev` of the next; a record removed or moved leaves `seq` out of step with the
 * line's place. The first record follows a genesis hash made from the CA's fingerprint, so the
 * log of another CA does not verify here.
 */
import { createHash } from 'node:crypto';

/** Who ran the command: the process's user and, when the kernel knows it, who logged in. */
export interface AuditActor {
  readonly uid: number;
  readonly name?: string;
  /**
   * The login uid (Linux audit, /proc/self/loginuid): the user who logged in, kept through su,
   * sudo and runuser, which a process cannot change without CAP_AUDIT_CONTROL.
   */
  readonly loginUid?: number;
  readonly loginName?: string;
}

/** What a command acted on. Never a token, a passphrase or a key: names, serials, ids, paths. */
export type AuditTarget = Readonly<Record<string, string | number | boolean | readonly string[]>>;

/**
 * `ok`: done; `refused`: nothing changed; `failed`: the command failed after its `ok` record, which
 * went first because the change is files outside the store (relay-cert, backup): what that record
 * says may be done in part, or not at all.
 */
export type AuditOutcome = 'ok' | 'refused' | 'failed';

export interface AuditEntry {
  /** The command's words: `token create`. */
  readonly command: string;
  readonly user: AuditActor;
  readonly target: AuditTarget;
  readonly outcome: AuditOutcome;
  /** A refusal's or failure's catalog code (PKI_ERR_*, CLI_ERR_*) and its message. */
  readonly code?: string;
  readonly message?: string;
}

/**
 * Records that the store did not commit (audit-log.ts): the command was cut between its record
 * and its commit, or a restore brought back records made after the store was copied.
 */
export interface NotInStore {
  readonly first: number;
  readonly last: number;
}

export interface AuditRecord extends AuditEntry {
  readonly seq: number;
  readonly time: string;
  readonly host: string;
  readonly notInStore?: NotInStore;
  readonly prev: string;
  readonly hash: string;
}

/** Where the chain stands: a record's number and hash (seq 0: the genesis, before any record). */
export interface ChainLink {
  readonly seq: number;
  readonly hash: string;
}

const HASH = /^[0-9a-f]{64}$/;
const HASH_ENDING = /,"hash":"([0-9a-f]{64})"\}$/;

export function genesisLink(caFingerprint: string): ChainLink {
  return { seq: 0, hash: sha256(`dmz-pki audit log of the CA ${caFingerprint}`) };
}

export interface RecordContext {
  readonly time: Date;
  readonly host: string;
  readonly notInStore?: NotInStore;
}

/** The line (no newline) of the record that follows `previous`. */
export function formatRecord(entry: AuditEntry, previous: ChainLink, context: RecordContext): AuditRecord {
  const body: Omit<AuditRecord, 'hash'> = {
    seq: previous.seq + 1,
    time: context.time.toISOString(),
    host: context.host,
    command: entry.command,
    user: entry.user,
    target: entry.target,
    outcome: entry.outcome,
    ...(entry.code === undefined ? {} : { code: entry.code }),
    ...(entry.message === undefined ? {} : { message: entry.message }),
    ...(context.notInStore === undefined ? {} : { notInStore: context.notInStore }),
    prev: previous.hash,
  };
  return { ...body, hash: sha256(JSON.stringify(body)) };
}

/** The bytes of a record's line: its fields in the order formatRecord gave them, hash last. */
export function recordLine(record: AuditRecord): string {
  return JSON.stringify(record);
}

export type ParsedLine = { readonly record: AuditRecord } | { readonly problem: string };

/** Reads one line back and checks it against its own hash; the chain is audit-verify.ts's. */
export function parseRecordLine(line: string): ParsedLine {
  const ending = HASH_ENDING.exec(line);
  if (ending === null) return { problem: 'is not a record of this log (no hash at its end)' };
  const body = `${line.slice(0, ending.index)}}`;
  if (sha256(body) !== ending[1]) return { problem: 'was altered: its hash does not match its contents' };
  let record: unknown;
  try {
    record = JSON.parse(line);
  } catch {
    return { problem: 'is not a record of this log (not JSON)' };
  }
  return isAuditRecord(record) ? { record } : { problem: 'is not a record of this log (fields missing)' };
}

function isAuditRecord(value: unknown): value is AuditRecord {
  const record = value as Partial<Record<keyof AuditRecord, unknown>> | null;
  return (
    typeof record === 'object' &&
    record !== null &&
    Number.isSafeInteger(record.seq) &&
    typeof record.time === 'string' &&
    typeof record.command === 'string' &&
    typeof record.user === 'object' &&
    typeof record.target === 'object' &&
    (record.outcome === 'ok' || record.outcome === 'refused' || record.outcome === 'failed') &&
    typeof record.prev === 'string' &&
    HASH.test(record.prev)
  );
}

export function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

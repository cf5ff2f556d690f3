/**
 * Whether the PKI audit log is intact (`dmz-pki audit --verify`): every line a record that
 * matches its own hash, numbered by its place, following the line before it; and the store's
 * head (audit-log.ts) one of them, so a log cut short at its end shows too. Stops at the first
 * line that fails and names it: an auditor starts there.
 *
 * What it proves: the log is the one these commands wrote, unless whoever changed it also
 * rewrote every record after the change and the store's head. Someone with the state directory's
 * user (or root) can do that; the head `--verify` prints, kept off the appliance (or the log
 * shipped to a SIEM), is what shows even that (SECURITY.md, the PKI audit log).
 */
import { isUtf8 } from 'node:buffer';
import { genesisLink, parseRecordLine, type AuditRecord, type ChainLink } from './audit-record.ts';

/** A crash between a record and its commit leaves one record the store never committed. */
const MAX_UNCOMMITTED = 1;

export interface AuditProblem {
  /** 1-based line number in the file; none when the store's head is what is damaged. */
  readonly line?: number;
  readonly reason: string;
}

export interface AuditVerification {
  readonly records: readonly AuditRecord[];
  /** The last record's link: what an auditor keeps off the appliance to compare later. */
  readonly last: ChainLink | undefined;
  /** Records after the store's head: their commands never committed (audit-log.ts). */
  readonly notInStore: number;
  /** The file ends in part of a line: an append cut short, which the next record removes. */
  readonly cutShort: boolean;
  readonly problem?: AuditProblem;
}

/**
 * `log` is the whole file (undefined: there is none); `head` the store's; `anchor` a record
 * noted off the appliance earlier (`--anchor`), which must still be in the log as it was.
 */
export function verifyAuditLog(
  log: Buffer | undefined,
  head: ChainLink | 'damaged' | undefined,
  caFingerprint: string,
  anchor?: ChainLink,
): AuditVerification {
  const records: AuditRecord[] = [];
  const lines = log === undefined || log.length === 0 ? [] : splitLines(log);
  // The newline that ends the last record leaves one empty piece; any other empty piece is a line.
  // A last line without its newline is an append a crash cut short, which never committed
  // (audit-log.ts): the next record removes it.
  const cutShort = lines.length > 0 && lines.at(-1)?.length !== 0;
  lines.pop();
  let previous = genesisLink(caFingerprint);
  const fail = (line: number | undefined, reason: string): AuditVerification => ({
    records,
    last: records.at(-1),
    notInStore: 0,
    cutShort,
    problem: line === undefined ? { reason } : { line, reason },
  });
  for (const [index, bytes] of lines.entries()) {
    const number = index + 1;
    // The hash is over the bytes written, which JSON.stringify always makes UTF-8: bytes that are
    // not would decode to U+FFFD, the same text as other bytes, and pass a check of the text.
    if (!isUtf8(bytes)) return fail(number, 'is not UTF-8: its bytes were altered');
    const parsed = parseRecordLine(bytes.toString('utf8'));
    if ('problem' in parsed) return fail(number, parsed.problem);
    const { record } = parsed;
    if (record.seq !== number) {
      return fail(
        number,
        `holds record ${record.seq} where record ${number} belongs: records were removed, added or moved`,
      );
    }
    if (record.prev !== previous.hash) {
      return fail(
        number,
        number === 1
          ? "does not start this CA's log: records before it were removed, or it is another CA's"
          : `does not follow line ${number - 1}: that line was rewritten, or a record between them removed`,
      );
    }
    records.push(record);
    previous = record;
  }
  // Before the store's head: the log and the store rolled back or rewritten together agree with
  // each other, and only a record kept elsewhere shows it.
  if (anchor !== undefined) {
    if (anchor.seq > records.length) {
      return fail(
        records.length + 1,
        `is missing: the log ends at record ${records.length}, before record ${anchor.seq} that --anchor names: the log and the store were put back from an older copy, or records were removed`,
      );
    }
    if (records[anchor.seq - 1]?.hash !== anchor.hash) {
      return fail(
        anchor.seq,
        'is not the record --anchor names: the log was rewritten from here or before, or an older copy put back',
      );
    }
  }
  if (head === 'damaged') {
    return fail(undefined, "cannot be checked to its end: the store's record of its last record was altered");
  }
  // No head: no record was ever committed (a state from before this log, or the very first
  // record cut before its commit).
  const committed = head ?? { seq: 0, hash: '' };
  if (committed.seq > records.length) {
    return fail(
      records.length + 1,
      `is missing: the log ends at record ${records.length}, the store's last is record ${committed.seq}: records were removed from its end`,
    );
  }
  if (committed.seq > 0 && records[committed.seq - 1]?.hash !== committed.hash) {
    return fail(
      committed.seq,
      'is not the record the store last committed: the log was rewritten from here on',
    );
  }
  const notInStore = records.length - committed.seq;
  // One command cut between its record and its commit leaves one; the next record names it.
  if (notInStore > MAX_UNCOMMITTED) {
    return fail(
      committed.seq + 1,
      `and the ${notInStore - 1} record(s) after it were never committed by the store: the store was replaced by an older copy, or records were added`,
    );
  }
  return { records, last: records.at(-1), notInStore, cutShort };
}

/**
 * The numbers of the records whose commands the store never committed: those a later record names
 * (`notInStore`), and those after the store's head. Bounded by the records there are, whatever a
 * hostile file claims.
 */
export function recordsNotInStore(verification: AuditVerification): ReadonlySet<number> {
  const { records } = verification;
  const seqs = new Set<number>();
  const add = (first: number, last: number) => {
    for (let seq = Math.max(first, 1); seq <= Math.min(last, records.length); seq += 1) seqs.add(seq);
  };
  for (const { notInStore } of records) {
    if (notInStore !== undefined) add(notInStore.first, notInStore.last);
  }
  add(records.length - verification.notInStore + 1, records.length);
  return seqs;
}

/** The pieces between newlines, as views of `log`: the last is empty when it ends in one. */
function splitLines(log: Buffer): Buffer[] {
  const lines: Buffer[] = [];
  let start = 0;
  for (let end = log.indexOf(0x0a); end !== -1; end = log.indexOf(0x0a, start)) {
    lines.push(log.subarray(start, end));
    start = end + 1;
  }
  lines.push(log.subarray(start));
  return lines;
}

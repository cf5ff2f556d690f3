/**
 * `dmz-pki audit [--verify]`: the PKI audit log (pki/audit-log.ts), listed, or checked for an
 * altered, removed or moved record (pki/audit-verify.ts). Reads only: it writes no record.
 */
import { DmzError } from '../../relay/protocol/errors.ts';
import { auditLogPath, readAuditHead, readAuditLog } from '../audit-log.ts';
import type { AuditRecord, AuditTarget, ChainLink } from '../audit-record.ts';
import {
  recordsNotInStore,
  verifyAuditLog,
  type AuditProblem,
  type AuditVerification,
} from '../audit-verify.ts';
import { defineCommand, invalidArgument, quote, withState } from './command.ts';
import { printJson, printNote, printTable, type Output } from './output.ts';

export const auditCommand = defineCommand({
  words: ['audit'],
  summary: 'list the audit trail of dmz-pki commands, or verify that it is intact',
  usage: `Usage: dmz-pki --state DIR audit [--verify [--anchor SEQ:sha256:HASH]]

Lists the audit log of the commands that changed this CA (init, token create and revoke, revoke,
crl reissues, relay-cert, backup, restore), refusals included: time, user, command, what it acted
on, outcome. Each record carries the hash of the one before it, and the store keeps the last.

Options:
  --verify             check the whole chain and the store's last record instead of listing:
                       exit 0 and the last record's hash when intact (keep it off the appliance
                       to check against later), exit 1 naming the first bad line when not
  --anchor SEQ:sha256:HASH
                       a last record --verify printed before: the log must still hold it as it
                       was. Shows what nothing on the appliance can: the log and the store
                       rolled back or rewritten together, or an older backup restored
  --json               print the records, or {intact, records, last, notInStore, cutShort, problem}`,
  options: {
    verify: { type: 'boolean' },
    anchor: { type: 'string' },
  },
  operands: [],
  async run({ values, stateDir, output }) {
    const anchor = values.anchor === undefined ? undefined : parseAnchor(values.anchor);
    const { log, verification } = await withState(stateDir, (state) => {
      const log = readAuditLog(stateDir);
      return {
        log,
        verification: verifyAuditLog(log, readAuditHead(state.store), state.caFingerprint, anchor),
      };
    });
    if (values.verify === true) {
      reportVerification(verification, stateDir, values.json === true, output);
      return;
    }
    // Only the records before the first bad line: listed, one after it would be taken as true.
    const { problem } = verification;
    const records = verification.records.slice(0, problem?.line === undefined ? undefined : problem.line - 1);
    if (problem !== undefined) {
      printNote(
        output,
        `warning: ${describeProblem(stateDir, problem)}; records from there on are not listed`,
      );
    } else if (log === undefined) {
      printNote(output, `no audit log yet in ${quote(stateDir)}`);
    }
    // The records as the log holds them, each still checkable against its hash; a later
    // record's `notInStore` names those the store never committed.
    if (values.json === true) {
      printJson(output, records);
      return;
    }
    // A record the store never committed reads `ok` for a change that was not made: said so.
    const notInStore = recordsNotInStore(verification);
    printTable(
      output,
      ['SEQ', 'TIME', 'USER', 'COMMAND', 'OUTCOME', 'TARGET'],
      records.map((record) =>
        [
          String(record.seq),
          record.time,
          describeUser(record),
          record.command,
          describeOutcome(record, notInStore.has(record.seq)),
          describeTarget(record.target),
        ].map(printable),
      ),
    );
  },
});

function reportVerification(
  verification: AuditVerification,
  stateDir: string,
  json: boolean,
  output: Output,
): void {
  const { records, last, notInStore, problem } = verification;
  if (json) {
    printJson(output, {
      intact: problem === undefined,
      records: records.length,
      last: last === undefined ? null : { seq: last.seq, hash: last.hash },
      notInStore,
      cutShort: verification.cutShort,
      ...(problem === undefined ? {} : { problem }),
    });
  }
  if (problem !== undefined) {
    throw new DmzError('PKI_ERR_AUDIT_BROKEN', describeProblem(stateDir, problem), {
      hint: 'compare with a copy kept off the appliance (a SIEM, or the hash --verify printed before)',
    });
  }
  if (json) return;
  if (notInStore > 0) {
    printNote(output, `the last record's command was cut before it committed: its change was not made`);
  }
  if (verification.cutShort) {
    printNote(output, 'the log ends in part of a record a crash cut short: its command did not commit');
  }
  output.stdout(
    last === undefined
      ? 'intact: no records yet\n'
      : `intact: ${records.length} record(s), the last ${formatAnchor(last)}\n`,
  );
}

/** A record's link as --verify prints it and --anchor takes it back: `7:sha256:<hash>`. */
function formatAnchor(link: ChainLink): string {
  return `${link.seq}:sha256:${link.hash}`;
}

function parseAnchor(value: string): ChainLink {
  const anchor = /^([1-9]\d{0,15}):sha256:([0-9a-f]{64})$/.exec(value);
  if (anchor === null) {
    throw invalidArgument(
      `--anchor must be SEQ:sha256:HASH, as 'dmz-pki audit --verify' prints the last record: ${quote(value)}`,
    );
  }
  return { seq: Number(anchor[1]), hash: anchor[2] ?? '' };
}

function describeProblem(stateDir: string, problem: AuditProblem): string {
  const where = problem.line === undefined ? '' : ` line ${problem.line}`;
  return `${quote(auditLogPath(stateDir))}${where} ${problem.reason}`;
}

function describeUser(record: AuditRecord): string {
  const { uid, name, loginUid, loginName } = record.user;
  const user = name ?? `uid ${uid}`;
  if (loginUid === undefined || loginUid === uid) return user;
  return `${user} (login ${loginName ?? `uid ${loginUid}`})`;
}

function describeOutcome(record: AuditRecord, notInStore: boolean): string {
  const outcome = notInStore ? `${record.outcome}, not in the store` : record.outcome;
  return record.code === undefined ? outcome : `${outcome} ${record.code}`;
}

/**
 * `key=value` pairs; a value that is not a plain word is quoted, so that one with a space, an
 * `=` or a comma cannot pass for pairs or list items of its own.
 */
function describeTarget(target: AuditTarget): string {
  return Object.entries(target)
    .map(([key, value]) => {
      const items: readonly unknown[] = Array.isArray(value) ? value : [value];
      return `${describeWord(key)}=${items.map((item) => describeWord(String(item))).join(',')}`;
    })
    .join(' ');
}

const PLAIN_WORD = /^[A-Za-z0-9_.:/@+-]+$/;

function describeWord(text: string): string {
  return PLAIN_WORD.test(text) ? text : quote(text);
}

/**
 * What a terminal acts on instead of showing (controls, C0 and C1: a newline that would print a
 * row of its own, an escape sequence that clears or recolours the screen) and what changes what
 * it shows without showing itself (format characters: bidi overrides, zero-width ones; line and
 * paragraph separators), as `\uXXXX`. The values come from the command line of whoever ran a
 * command, or from whoever wrote the file.
 */
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu;

function printable(text: string): string {
  return text.replace(UNPRINTABLE, (char) => {
    const hex = (char.codePointAt(0) ?? 0).toString(16);
    return hex.length <= 4 ? `\\u${hex.padStart(4, '0')}` : `\\u{${hex}}`;
  });
}

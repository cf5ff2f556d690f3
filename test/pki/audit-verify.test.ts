/**
 * `dmz-pki audit --verify` against the changes someone might make to the PKI audit log: each row
 * changes a copy of one real state directory and expects the first bad line named; the intact
 * copy must pass, so the check is seen to be able to say both.
 */
import assert from 'node:assert/strict';
import { appendFileSync, cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { appendAuditRecord, auditLogPath } from '../../pki/audit-log.ts';
import { parseRecordLine, sha256, type AuditRecord } from '../../pki/audit-record.ts';
import { currentActor } from '../../pki/audit-trail.ts';
import { openState } from '../../pki/state.ts';
import { statePath } from '../../pki/state-layout.ts';
import { createCaState } from '../support/ca-state.ts';
import { runPki, type PkiRun } from '../support/pki-cli.ts';

let root: string;
/** A CA with seven records: init, then six commands. */
let template: string;
/** The template's pki.db as it was after five records. */
let olderStore: string;
/** Another CA's log, with as many records. */
let otherLog: string;

function pkiIn(stateDir: string, ...args: string[]): Promise<PkiRun> {
  return runPki(['--state', stateDir, ...args]);
}

async function makeRecords(stateDir: string, names: readonly string[]): Promise<void> {
  for (const name of names) {
    assert.equal((await pkiIn(stateDir, 'token', 'create', '--name', name, '--role', 'ot')).code, 0);
  }
}

/** The store with its WAL folded in, so that one file is the whole of it. */
async function checkpoint(stateDir: string): Promise<void> {
  const state = await openState(stateDir);
  state.close();
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'dmz-pki-audit-verify-'));
  template = join(root, 'template');
  await createCaState(template);
  await makeRecords(template, ['press-1', 'press-2', 'press-3', 'press-4']);
  await checkpoint(template);
  olderStore = join(root, 'older.db');
  cpSync(statePath(template, 'database'), olderStore);
  await makeRecords(template, ['press-5', 'press-6']);
  const other = join(root, 'other');
  await createCaState(other);
  await makeRecords(other, ['press-1', 'press-2', 'press-3', 'press-4', 'press-5', 'press-6']);
  otherLog = readFileSync(auditLogPath(other), 'utf8');
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

const lines = (text: string) => text.split('\n').filter((line) => line !== '');
const joinLines = (list: readonly string[]) => `${list.join('\n')}\n`;

/** A record changed and given the hash it would then have, as someone who knows the format would. */
function rewritten(line: string, change: (record: AuditRecord) => AuditRecord): string {
  const parsed = parseRecordLine(line);
  assert.ok('record' in parsed);
  const body = Object.fromEntries(Object.entries(change(parsed.record)).filter(([key]) => key !== 'hash'));
  return JSON.stringify({ ...body, hash: sha256(JSON.stringify(body)) });
}

interface Tampering {
  readonly name: string;
  /** The log's new text, from its lines; or undefined to delete the file. */
  readonly log?: (records: string[]) => string | undefined;
  /** Something else done to the state directory. */
  readonly state?: (stateDir: string) => void;
  readonly line: number;
  readonly says: RegExp;
}

const TAMPERINGS: readonly Tampering[] = [
  {
    name: 'a record edited in place',
    log: (r) => joinLines(r.map((line, i) => (i === 2 ? line.replace('press-2', 'press-9') : line))),
    line: 3,
    says: /was altered/,
  },
  {
    name: 'a record edited with its hash made anew',
    log: (r) =>
      joinLines(
        r.map((line, i) =>
          i === 2
            ? rewritten(line, (record) => ({ ...record, target: { ...record.target, name: 'press-9' } }))
            : line,
        ),
      ),
    line: 4,
    says: /does not follow line 3/,
  },
  {
    name: 'a record deleted',
    log: (r) => joinLines(r.filter((_, i) => i !== 1)),
    line: 2,
    says: /holds record 3 where record 2 belongs/,
  },
  {
    name: 'two records swapped',
    log: (r) => joinLines([r[0]!, r[1]!, r[3]!, r[2]!, ...r.slice(4)]),
    line: 3,
    says: /holds record 4 where record 3 belongs/,
  },
  {
    name: 'the last record removed',
    log: (r) => joinLines(r.slice(0, -1)),
    line: 7,
    says: /is missing.*removed from its end/,
  },
  {
    name: 'the whole log removed',
    log: () => undefined,
    line: 1,
    says: /is missing: the log ends at record 0/,
  },
  {
    name: 'a line added',
    log: (r) => joinLines([...r.slice(0, 4), '{"seq":5,"note":"added"}', ...r.slice(4)]),
    line: 5,
    says: /is not a record of this log/,
  },
  {
    name: 'every record from the third on rewritten, hashes and all',
    log: (r) => {
      const out = r.slice(0, 2);
      for (const line of r.slice(2)) {
        const previous = parseRecordLine(out.at(-1)!);
        assert.ok('record' in previous);
        out.push(rewritten(line, (record) => ({ ...record, host: 'elsewhere', prev: previous.record.hash })));
      }
      return joinLines(out);
    },
    line: 7,
    says: /is not the record the store last committed/,
  },
  {
    name: 'the store replaced by an older copy of itself',
    state: (stateDir) => {
      for (const suffix of ['-wal', '-shm'])
        rmSync(`${statePath(stateDir, 'database')}${suffix}`, { force: true });
      cpSync(olderStore, statePath(stateDir, 'database'));
    },
    line: 6,
    says: /never committed by the store: the store was replaced by an older copy/,
  },
  { name: "another CA's log", log: () => otherLog, line: 1, says: /does not start this CA's log/ },
];

describe('dmz-pki audit --verify', () => {
  it('passes the log as the commands wrote it, printing the last record and its hash', async () => {
    const run = await pkiIn(template, 'audit', '--verify');
    assert.equal(run.code, 0, run.stderr);
    const last = JSON.parse(lines(readFileSync(auditLogPath(template), 'utf8')).at(-1)!) as AuditRecord;
    assert.equal(run.stdout, `intact: 7 record(s), the last 7:sha256:${last.hash}\n`);
  });

  for (const [index, tampering] of TAMPERINGS.entries()) {
    it(`names line ${tampering.line} when ${tampering.name}`, async () => {
      const stateDir = join(root, `tampered-${index}`);
      cpSync(template, stateDir, { recursive: true });
      const path = auditLogPath(stateDir);
      if (tampering.log !== undefined) {
        const text = tampering.log(lines(readFileSync(path, 'utf8')));
        if (text === undefined) rmSync(path);
        else writeFileSync(path, text);
      }
      tampering.state?.(stateDir);
      const run = await pkiIn(stateDir, 'audit', '--verify');
      assert.equal(run.code, 1, run.stdout);
      assert.match(run.stderr, new RegExp(`pki-audit\\.jsonl" line ${tampering.line} `));
      assert.match(run.stderr, tampering.says);
      assert.match(run.stderr, /\(PKI_ERR_AUDIT_BROKEN\)/);
      const json = JSON.parse((await pkiIn(stateDir, 'audit', '--verify', '--json')).stdout) as {
        intact: boolean;
        problem: { line: number };
      };
      assert.deepEqual([json.intact, json.problem.line], [false, tampering.line]);
      // The listing shows the records before the bad line only, and says why.
      const listed = await pkiIn(stateDir, 'audit', '--json');
      assert.equal((JSON.parse(listed.stdout) as unknown[]).length, Math.min(tampering.line - 1, 7));
      assert.match(listed.stderr, /warning: .* line \d+ /);
    });
  }

  it('status reports the log: its records and intact, or the line it breaks at, with a warning', async () => {
    const intact = JSON.parse((await pkiIn(template, 'status', '--json')).stdout) as { auditLog: unknown };
    assert.deepEqual(intact.auditLog, { records: 7, intact: true });
    const stateDir = join(root, 'status');
    cpSync(template, stateDir, { recursive: true });
    const path = auditLogPath(stateDir);
    writeFileSync(path, joinLines(lines(readFileSync(path, 'utf8')).filter((_, i) => i !== 3)));
    const broken = await pkiIn(stateDir, 'status');
    assert.equal(broken.code, 0, broken.stderr);
    assert.match(broken.stdout, /^audit log\s+does not verify from line 4$/m);
    assert.match(broken.stderr, /warning: the audit log does not verify: run 'dmz-pki audit --verify'/);
  });

  it("says so when the store's record of the last record is not one dmz-pki wrote", async () => {
    const stateDir = join(root, 'head-altered');
    cpSync(template, stateDir, { recursive: true });
    const state = await openState(stateDir);
    try {
      state.store.setMeta('audit_head', 'anything');
    } finally {
      state.close();
    }
    const run = await pkiIn(stateDir, 'audit', '--verify');
    assert.equal(run.code, 1, run.stdout);
    assert.match(
      run.stderr,
      /pki-audit\.jsonl" cannot be checked to its end: the store's record .* was altered/,
    );
  });

  it('a record cut short by a crash: a note, not a break, and the next record takes its place', async () => {
    const stateDir = join(root, 'torn');
    cpSync(template, stateDir, { recursive: true });
    const path = auditLogPath(stateDir);
    const whole = readFileSync(path, 'utf8');
    appendFileSync(path, lines(whole).at(-1)!.slice(0, 100));
    const verified = await pkiIn(stateDir, 'audit', '--verify');
    assert.equal(verified.code, 0, verified.stderr);
    assert.match(verified.stderr, /the log ends in part of a record a crash cut short/);
    assert.equal((await pkiIn(stateDir, 'token', 'create', '--name', 'press-8', '--role', 'ot')).code, 0);
    const after = lines(readFileSync(path, 'utf8'));
    assert.deepEqual(after.slice(0, -1), lines(whole));
    assert.equal((JSON.parse(after.at(-1)!) as AuditRecord).seq, 8);
    const again = await pkiIn(stateDir, 'audit', '--verify');
    assert.deepEqual([again.code, again.stderr], [0, '']);
  });

  it('a command cut between its record and its commit: one record not in the store, named by the next', async () => {
    const stateDir = join(root, 'cut');
    cpSync(template, stateDir, { recursive: true });
    const state = await openState(stateDir);
    try {
      // The record is written, the transaction never commits: what a crash between them leaves.
      assert.throws(() =>
        state.store.transaction(() => {
          appendAuditRecord(state, {
            command: 'token revoke',
            user: currentActor(),
            target: { jti: 'x' },
            outcome: 'ok',
          });
          throw new Error('cut');
        }),
      );
    } finally {
      state.close();
    }
    const verified = await pkiIn(stateDir, 'audit', '--verify');
    assert.equal(verified.code, 0, verified.stderr);
    assert.match(verified.stderr, /the last record's command was cut before it committed/);
    assert.equal((await pkiIn(stateDir, 'token', 'create', '--name', 'press-8', '--role', 'ot')).code, 0);
    const last = JSON.parse(lines(readFileSync(auditLogPath(stateDir), 'utf8')).at(-1)!) as AuditRecord;
    assert.deepEqual([last.seq, last.notInStore], [9, { first: 8, last: 8 }]);
    const again = await pkiIn(stateDir, 'audit', '--verify');
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stderr, '');
  });
});

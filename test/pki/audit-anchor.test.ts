/**
 * What only a copy off the appliance shows, and `dmz-pki audit --verify --anchor` checks: the log
 * and the store rolled back together (an older copy of both put back, records removed from the end
 * and the store's head moved with them, the chain rewritten from the middle by the program's own
 * writer), and an old backup restored over the history made after it. Each passes --verify alone,
 * which is the limit SECURITY.md states; each fails against the last record noted before it.
 */
import assert from 'node:assert/strict';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { appendAuditRecord, auditLogPath } from '../../pki/audit-log.ts';
import { currentActor } from '../../pki/audit-trail.ts';
import { openState } from '../../pki/state.ts';
import { statePath } from '../../pki/state-layout.ts';
import { createCaState } from '../support/ca-state.ts';
import { runPki, type PkiRun } from '../support/pki-cli.ts';

const BACKUP_PASSPHRASE = 'k3Vq8xW1pZr7Ls0YdN4mT6bJ';

let root: string;
/** A CA with five records. */
let template: string;
/** The template as it was at its third record: log, store and all. */
let older: string;
/** The anchor --verify printed for the template's fifth record. */
let anchor: string;

function pkiIn(stateDir: string, ...args: string[]): Promise<PkiRun> {
  return runPki(['--state', stateDir, ...args], { DMZ_BACKUP_PASSPHRASE: BACKUP_PASSPHRASE });
}

async function tokens(stateDir: string, names: readonly string[]): Promise<void> {
  for (const name of names) {
    assert.equal((await pkiIn(stateDir, 'token', 'create', '--name', name, '--role', 'ot')).code, 0);
  }
}

/** What `--verify` prints to note elsewhere: `intact: N record(s), the last SEQ:sha256:HASH`. */
async function printedAnchor(stateDir: string): Promise<string> {
  const run = await pkiIn(stateDir, 'audit', '--verify');
  assert.equal(run.code, 0, run.stderr);
  const printed = /the last (\d+:sha256:[0-9a-f]{64})\n$/.exec(run.stdout);
  assert.ok(printed !== null, run.stdout);
  return printed[1]!;
}

/** The state directory's files copied whole, the store's WAL folded in first. */
async function copyState(from: string, to: string): Promise<void> {
  (await openState(from)).close();
  cpSync(from, to, { recursive: true });
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'dmz-pki-audit-anchor-'));
  template = join(root, 'template');
  await createCaState(template);
  await tokens(template, ['press-1', 'press-2']);
  older = join(root, 'older');
  await copyState(template, older);
  await tokens(template, ['press-3', 'press-4']);
  anchor = await printedAnchor(template);
  assert.match(anchor, /^5:/);
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

async function assertAnchorFails(stateDir: string, line: number, says: RegExp): Promise<void> {
  const run = await pkiIn(stateDir, 'audit', '--verify', '--anchor', anchor);
  assert.equal(run.code, 1, run.stdout);
  assert.match(run.stderr, new RegExp(`pki-audit\\.jsonl" line ${line} `));
  assert.match(run.stderr, says);
  assert.match(run.stderr, /\(PKI_ERR_AUDIT_BROKEN\)/);
}

describe('dmz-pki audit --verify --anchor', () => {
  it('passes the log the anchor was taken from, and the same log grown since', async () => {
    const stateDir = join(root, 'grown');
    await copyState(template, stateDir);
    await tokens(stateDir, ['press-5']);
    const run = await pkiIn(stateDir, 'audit', '--verify', '--anchor', anchor);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^intact: 6 record\(s\), the last 6:sha256:[0-9a-f]{64}\n$/);
  });

  it('the log and the store put back together from an older copy: intact alone, caught by the anchor', async () => {
    const stateDir = join(root, 'rolled-back');
    await copyState(template, stateDir);
    for (const suffix of ['', '-wal', '-shm'])
      rmSync(`${statePath(stateDir, 'database')}${suffix}`, { force: true });
    cpSync(statePath(older, 'database'), statePath(stateDir, 'database'));
    cpSync(auditLogPath(older), auditLogPath(stateDir));
    assert.equal((await pkiIn(stateDir, 'audit', '--verify')).code, 0, 'the limit: nothing local shows it');
    await assertAnchorFails(stateDir, 4, /the log ends at record 3, before record 5 that --anchor names/);
  });

  it("records removed from the end, the store's head moved back and the chain written on anew: caught", async () => {
    const stateDir = join(root, 'rechained');
    await copyState(template, stateDir);
    const path = auditLogPath(stateDir);
    const kept = readFileSync(path, 'utf8').split('\n').slice(0, 3);
    writeFileSync(path, `${kept.join('\n')}\n`);
    const state = await openState(stateDir);
    try {
      const third = JSON.parse(kept[2]!) as { seq: number; hash: string };
      state.store.setMeta('audit_head', `${third.seq} ${third.hash}`);
      // Two records of commands nobody ran, by the program's own writer.
      for (const name of ['decoy-1', 'decoy-2']) {
        state.store.transaction(() =>
          appendAuditRecord(state, {
            command: 'token create',
            user: currentActor(),
            target: { name, role: 'ot' },
            outcome: 'ok',
          }),
        );
      }
    } finally {
      state.close();
    }
    assert.equal((await pkiIn(stateDir, 'audit', '--verify')).code, 0, 'the limit: nothing local shows it');
    await assertAnchorFails(stateDir, 5, /is not the record --anchor names: the log was rewritten/);
  });

  it('an old backup restored: the history made after it is not there, and the anchor says so', async () => {
    const backup = join(root, 'older.dmzbak');
    assert.equal((await pkiIn(older, 'backup', '--out', backup)).code, 0);
    const stateDir = join(root, 'restored');
    const restored = await pkiIn(stateDir, 'restore', '--in', backup);
    assert.equal(restored.code, 0, restored.stderr);
    // Intact: the backup's three records (init, two tokens; the backup's own comes after its
    // copy) and the restore's own, which says when the backup was made.
    assert.match((await pkiIn(stateDir, 'audit', '--verify')).stdout, /^intact: 4 record\(s\)/);
    await assertAnchorFails(stateDir, 5, /the log ends at record 4, before record 5 that --anchor names/);
  });

  for (const bad of [
    '5',
    '5:0123',
    'x:sha256:' + '0'.repeat(64),
    `0:sha256:${'0'.repeat(64)}`,
    `5:sha256:${'A'.repeat(64)}`,
  ]) {
    it(`refuses --anchor ${JSON.stringify(bad.slice(0, 12))}: not what --verify prints`, async () => {
      const run = await pkiIn(template, 'audit', '--verify', '--anchor', bad);
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, /--anchor must be SEQ:sha256:HASH/);
      assert.match(run.stderr, /\(CLI_ERR_INVALID_ARGUMENT\)/);
    });
  }
});

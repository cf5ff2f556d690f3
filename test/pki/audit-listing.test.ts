/**
 * `dmz-pki audit` as an auditor reads it on a terminal, against values chosen to mislead: an
 * agent name or a backup path with a newline that would print a row of its own, an escape
 * sequence that would clear the screen or recolour a row, a bidi override that would reverse
 * what follows. And a record whose command was cut before its commit, which must not read as a
 * change that was made.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { appendAuditRecord } from '../../pki/audit-log.ts';
import type { AuditRecord } from '../../pki/audit-record.ts';
import { currentActor } from '../../pki/audit-trail.ts';
import { openState } from '../../pki/state.ts';
import { createCaState } from '../support/ca-state.ts';
import { runPki } from '../support/pki-cli.ts';

const BACKUP_PASSPHRASE = 'k3Vq8xW1pZr7Ls0YdN4mT6bJ';
/** Characters a terminal acts on rather than shows, or that change what it shows unseen. */
const CONTROL = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'dmz-pki-audit-listing-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

async function pkiIn(stateDir: string, ...args: string[]) {
  return runPki(['--state', stateDir, ...args], { DMZ_BACKUP_PASSPHRASE: BACKUP_PASSPHRASE });
}

describe('dmz-pki audit - the listing on a terminal', () => {
  it('a hostile agent name, reason text or path prints as one escaped row, never as control characters', async () => {
    const stateDir = join(root, 'hostile');
    await createCaState(stateDir);
    const forgedRow = '\n9    2026-12-01T00:00:00.000Z  alice  revoke  ok  target=press-1';
    assert.equal((await pkiIn(stateDir, 'revoke', `press-1\u001b[2J\u001b[31m${forgedRow}`)).code, 1);
    assert.equal((await pkiIn(stateDir, 'revoke', 'press-\u202egnp.1')).code, 1);
    const out = join(root, `backup${forgedRow}\r\u0007.dmzbak`);
    assert.equal((await pkiIn(stateDir, 'backup', '--out', out)).code, 0);
    const listed = await pkiIn(stateDir, 'audit');
    assert.equal(listed.code, 0, listed.stderr);
    const rows = listed.stdout.split('\n').slice(0, -1);
    assert.equal(
      rows.length,
      1 + 4,
      `a header and four records (init, two revokes, backup):\n${listed.stdout}`,
    );
    for (const row of rows) assert.doesNotMatch(row, CONTROL, JSON.stringify(row));
    assert.match(rows[2]!, /target="press-1\\u001b\[2J\\u001b\[31m\\n9 /);
    assert.match(rows[3]!, /target="press-\\u202egnp\.1"/);
    assert.match(rows[4]!, /file=".*backup\\n9 .*\\r\\u0007\.dmzbak"/);
    // Plain values stay as they are.
    assert.match(rows[1]!, /trustDomain=plant\.test /);
    // JSON keeps the values themselves.
    const records = JSON.parse((await pkiIn(stateDir, 'audit', '--json')).stdout) as {
      target: { file?: string };
    }[];
    assert.equal(records[3]?.target.file, out);
  });

  it('a record whose command was cut before its commit is listed as not in the store, not as done', async () => {
    const stateDir = join(root, 'cut');
    await createCaState(stateDir);
    const state = await openState(stateDir);
    try {
      assert.throws(() =>
        state.store.transaction(() => {
          appendAuditRecord(state, {
            command: 'revoke',
            user: currentActor(),
            target: { target: 'press-1', reason: 'keyCompromise' },
            outcome: 'ok',
          });
          throw new Error('killed between the record and the commit');
        }),
      );
    } finally {
      state.close();
    }
    const outcome = async () =>
      (await pkiIn(stateDir, 'audit')).stdout
        .split('\n')
        .filter((row) => /^2 /.test(row))
        .map((row) => row.split(/ {2,}/)[4]);
    assert.deepEqual(await outcome(), ['ok, not in the store']);
    // Still so once the next record has named it; in JSON, that record's notInStore says it.
    assert.equal((await pkiIn(stateDir, 'token', 'create', '--name', 'press-2', '--role', 'ot')).code, 0);
    assert.deepEqual(await outcome(), ['ok, not in the store']);
    const records = JSON.parse((await pkiIn(stateDir, 'audit', '--json')).stdout) as AuditRecord[];
    assert.deepEqual(records.at(-1)?.notInStore, { first: 2, last: 2 });
  });
});

/**
 * `relay-cert`, `crl` and `backup` change files outside the store, which no transaction rolls back:
 * their record commits before the files are written (test/system/pki-audit-sigkill.test.ts kills them at
 * each step). A failure after that record is recorded too, as `failed`, so the log never says a
 * change was made and stops there when it was not.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { auditLogPath } from '../../pki/audit-log.ts';
import type { AuditRecord } from '../../pki/audit-record.ts';
import { statePath } from '../../pki/state-layout.ts';
import { openState } from '../../pki/state.ts';
import { asidePath } from '../../relay/protocol/durable-files.ts';
import { createCaState, enrollInProcess } from '../support/ca-state.ts';
import { runPki } from '../support/pki-cli.ts';

const ENV = { DMZ_BACKUP_PASSPHRASE: 'k3Vq8xW1pZr7Ls0YdN4mT6bJ' };

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'dmz-pki-audit-record-first-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

function lastTwo(stateDir: string): AuditRecord[] {
  const lines = readFileSync(auditLogPath(stateDir), 'utf8').trimEnd().split('\n');
  return lines.slice(-2).map((line) => JSON.parse(line) as AuditRecord);
}

describe('pki audit log - a command that writes files records first', () => {
  it('relay-cert that cannot replace the pair: its ok record, then failed with the code', async () => {
    const stateDir = join(root, 'relay-cert');
    await createCaState(stateDir);
    const before = readFileSync(statePath(stateDir, 'relayCertificate'), 'utf8');
    // A directory where the key goes: the rename onto it fails once the record is in.
    rmSync(statePath(stateDir, 'relayKey'));
    mkdirSync(statePath(stateDir, 'relayKey'));
    const run = await runPki(['--state', stateDir, 'relay-cert']);
    assert.equal(run.code, 1, run.stdout);
    assert.equal(readFileSync(statePath(stateDir, 'relayCertificate'), 'utf8'), before);
    const [recorded, failed] = lastTwo(stateDir);
    assert.deepEqual([recorded?.command, recorded?.outcome], ['relay-cert', 'ok']);
    assert.match(String(recorded?.target.serial), /^[0-9a-f]+$/);
    assert.deepEqual(
      [failed?.command, failed?.outcome, failed?.target.serial],
      ['relay-cert', 'failed', recorded?.target.serial],
    );
    assert.match(failed?.code ?? '', /^(PKI|CLI)_ERR_/);
    const listed = await runPki(['--state', stateDir, 'audit']);
    assert.match(listed.stdout, /relay-cert +failed (PKI|CLI)_ERR_\w+ /);
    assert.equal((await runPki(['--state', stateDir, 'audit', '--verify'])).code, 0);
  });

  it('crl that cannot replace the CRL: its ok record with the new number, then failed, and the file as it was', async () => {
    const stateDir = join(root, 'crl');
    await createCaState(stateDir);
    await enrollInProcess(stateDir, 'ot', 'press-9');
    const state = await openState(stateDir);
    try {
      // Revoked in the store alone, as `revoke` leaves it when the CA key stays locked: due for reissue.
      state.store.revokeCertificates('press-9', 'keyCompromise', new Date());
    } finally {
      state.close();
    }
    const before = readFileSync(statePath(stateDir, 'crl'), 'utf8');
    // A directory, not empty, where this process writes the new CRL first: clearing it fails.
    mkdirSync(join(asidePath(statePath(stateDir, 'crl')), 'in-the-way'), { recursive: true });
    const run = await runPki(['--state', stateDir, 'crl']);
    assert.equal(run.code, 1, run.stdout);
    assert.equal(readFileSync(statePath(stateDir, 'crl'), 'utf8'), before);
    const [recorded, failed] = lastTwo(stateDir);
    assert.deepEqual(
      [recorded?.command, recorded?.outcome, recorded?.target.revokedSerials],
      ['crl', 'ok', 1],
    );
    assert.equal(typeof recorded?.target.crlNumber, 'number');
    assert.deepEqual(
      [failed?.command, failed?.outcome, failed?.target.crlNumber],
      ['crl', 'failed', recorded?.target.crlNumber],
    );
    assert.equal((await runPki(['--state', stateDir, 'audit', '--verify'])).code, 0);
  });

  it('backup into a file that exists: its ok record, then failed, and the file as it was', async () => {
    const stateDir = join(root, 'backup');
    await createCaState(stateDir);
    const out = join(root, 'taken.backup');
    assert.equal((await runPki(['--state', stateDir, 'backup', '--out', out], ENV)).code, 0);
    const first = readFileSync(out);
    const run = await runPki(['--state', stateDir, 'backup', '--out', out], ENV);
    assert.equal(run.code, 1, run.stdout);
    assert.match(run.stderr, /a backup never overwrites a file/);
    assert.deepEqual(readFileSync(out), first);
    const [recorded, failed] = lastTwo(stateDir);
    assert.deepEqual(
      [recorded?.command, recorded?.outcome, failed?.command, failed?.outcome, failed?.target.file],
      ['backup', 'ok', 'backup', 'failed', out],
    );
    assert.equal((await runPki(['--state', stateDir, 'audit', '--verify'])).code, 0);
  });
});

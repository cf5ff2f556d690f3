/**
 * The PKI audit log across backup and restore, beyond what test/pki/audit.test.ts shows (a
 * restore that chains its record on to the backup's log): a backup made by a release from before
 * the log (archive format 1, a store with no head) restores, and its restore starts the log.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { auditLogPath } from '../../pki/audit-log.ts';
import type { AuditRecord } from '../../pki/audit-record.ts';
import { decodeArchive } from '../../pki/backup-archive.ts';
import { openBackup, sealBackup } from '../../pki/backup-envelope.ts';
import { AUDIT_LOG_FILE, STATE_FILES } from '../../pki/state-layout.ts';
import { createCaState } from '../support/ca-state.ts';
import { runPki } from '../support/pki-cli.ts';

const PASSPHRASE = 'k3Vq8xW1pZr7Ls0YdN4mT6bJ';
const ENV = { DMZ_BACKUP_PASSPHRASE: PASSPHRASE };

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'dmz-pki-audit-backup-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** The store as an earlier release wrote it: the same tables, no audit head. */
function withoutAuditHead(database: Buffer): Buffer {
  const path = join(root, 'older-release.db');
  writeFileSync(path, database);
  const db = new Database(path);
  db.prepare("DELETE FROM meta WHERE key = 'audit_head'").run();
  db.close();
  return readFileSync(path);
}

/** An archive of format 1, laid out as backup-archive.ts describes, from these entries. */
function formatOneArchive(
  createdAt: Date,
  trustDomain: string,
  caFingerprint: string,
  entries: { name: string; contents: Buffer }[],
) {
  const manifest = Buffer.from(
    JSON.stringify({
      format: 1,
      createdAt: createdAt.toISOString(),
      trustDomain,
      caFingerprint,
      files: entries.map(({ name, contents }) => ({ kind: 'state', name, bytes: contents.length })),
    }),
  );
  const length = Buffer.alloc(4);
  length.writeUInt32BE(manifest.length);
  return Buffer.concat([length, manifest, ...entries.map((entry) => entry.contents)]);
}

describe('pki audit log - backups', () => {
  it('a backup from before the log restores, and the restore is the first record of its log', async () => {
    const stateDir = join(root, 'old');
    await createCaState(stateDir);
    const backupFile = join(root, 'new.backup');
    assert.equal((await runPki(['--state', stateDir, 'backup', '--out', backupFile], ENV)).code, 0);
    const archive = decodeArchive(await openBackup(await readFile(backupFile), PASSPHRASE));
    assert.ok(
      archive.entries.some((entry) => entry.name === AUDIT_LOG_FILE),
      'a backup holds the log',
    );
    const entries = archive.entries
      .filter((entry) => entry.name !== AUDIT_LOG_FILE)
      .map(({ name, contents }) => ({
        name,
        contents: name === STATE_FILES.database ? withoutAuditHead(contents) : contents,
      }));
    const olderFile = join(root, 'older.backup');
    const { createdAt, trustDomain, caFingerprint } = archive;
    writeFileSync(
      olderFile,
      await sealBackup(formatOneArchive(createdAt, trustDomain, caFingerprint, entries), PASSPHRASE),
    );

    const restored = join(root, 'restored');
    const run = await runPki(['--state', restored, 'restore', '--in', olderFile], ENV);
    assert.equal(run.code, 0, run.stderr);
    const log = readFileSync(auditLogPath(restored), 'utf8')
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as AuditRecord);
    assert.deepEqual(
      log.map((record) => [record.seq, record.command, record.target.file]),
      [[1, 'restore', olderFile]],
    );
    const verified = await runPki(['--state', restored, 'audit', '--verify']);
    assert.deepEqual([verified.code, verified.stdout.split(',')[0]], [0, 'intact: 1 record(s)']);
  });
});

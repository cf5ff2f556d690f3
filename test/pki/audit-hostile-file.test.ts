/**
 * `dmz-pki audit`, `audit --verify` and `status` read the PKI audit log; here the file is one
 * its user has made hostile: a FIFO (a reader would wait for a writer forever), a symbolic link
 * (a reader would check, and `backup` would take, whatever it points to), bytes that are not
 * UTF-8 (a reader that decodes them to U+FFFD checks other bytes than the file's), a line of
 * 32 MiB, JSON nested a million deep. Each must end promptly with the line or the file named.
 * Run as processes: a read that blocks would block a test running it in-process too.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { appendFileSync, cpSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { auditLogPath } from '../../pki/audit-log.ts';
import { sha256 } from '../../pki/audit-record.ts';
import { openState } from '../../pki/state.ts';
import { createCaState } from '../support/ca-state.ts';
import { runPki, type PkiRun } from '../support/pki-cli.ts';

const BIN = fileURLToPath(new URL('../../bin/dmz-pki.js', import.meta.url));
/** A bound on a hang, not a measure: a read that returns takes well under a second. */
const HANG_DEADLINE_MS = 60_000;

let root: string;
/** A CA with three records: init and two tokens. */
let template: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'dmz-pki-audit-hostile-'));
  template = join(root, 'template');
  await createCaState(template);
  for (const name of ['press-1', 'press-2']) {
    assert.equal(
      (await runPki(['--state', template, 'token', 'create', '--name', name, '--role', 'ot'])).code,
      0,
    );
  }
  (await openState(template)).close();
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

function copy(name: string): string {
  const stateDir = join(root, name);
  cpSync(template, stateDir, { recursive: true });
  return stateDir;
}

/** dmz-pki as a process, killed if it has not ended by the deadline (then `hung`). */
function pkiProcess(stateDir: string, ...args: string[]): Promise<PkiRun & { hung: boolean }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, '--state', stateDir, ...args],
      { timeout: HANG_DEADLINE_MS, killSignal: 'SIGKILL', env: { PATH: process.env.PATH ?? '' } },
      (error, stdout, stderr) => {
        const hung = error?.killed === true;
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        resolve({ code, stdout, stderr, hung });
      },
    );
  });
}

/** A line that passes its own hash check, whatever its body: what anyone can write. */
function hashedLine(body: string): string {
  assert.ok(body.endsWith('}'));
  return `${body.slice(0, -1)},"hash":"${sha256(body)}"}`;
}

describe('pki audit log - a hostile file at its path', () => {
  it('a FIFO: audit, audit --verify and status refuse it at once, and commands refuse to append', async () => {
    const stateDir = copy('fifo');
    rmSync(auditLogPath(stateDir));
    execFileSync('mkfifo', ['-m', '600', auditLogPath(stateDir)]);
    for (const args of [['audit'], ['audit', '--verify'], ['status']]) {
      const run = await pkiProcess(stateDir, ...args);
      assert.equal(run.hung, false, `${args.join(' ')} waited on the FIFO`);
      assert.equal(run.code, 1, `${args.join(' ')}: ${run.stdout}`);
      assert.match(run.stderr, /pki-audit\.jsonl" is not a regular file \(PKI_ERR_AUDIT_BROKEN\)/);
    }
    const created = await pkiProcess(stateDir, 'token', 'create', '--name', 'press-3', '--role', 'ot');
    assert.deepEqual([created.hung, created.code], [false, 1]);
    assert.match(created.stderr, /PKI_ERR_AUDIT_WRITE/);
  });

  it('a symbolic link to a log elsewhere: read by nothing, taken into no backup', async () => {
    const stateDir = copy('symlink');
    const elsewhere = join(root, 'elsewhere.jsonl');
    cpSync(auditLogPath(stateDir), elsewhere);
    rmSync(auditLogPath(stateDir));
    symlinkSync(elsewhere, auditLogPath(stateDir));
    for (const args of [['audit'], ['audit', '--verify'], ['status']]) {
      const run = await runPki(['--state', stateDir, ...args]);
      assert.equal(run.code, 1, `${args.join(' ')}: ${run.stdout}`);
      assert.match(run.stderr, /pki-audit\.jsonl" is a symbolic link \(PKI_ERR_AUDIT_BROKEN\)/);
    }
    const backup = await runPki(['--state', stateDir, 'backup', '--out', join(root, 'symlink.backup')], {
      DMZ_BACKUP_PASSPHRASE: 'k3Vq8xW1pZr7Ls0YdN4mT6bJ',
    });
    assert.equal(backup.code, 1);
    assert.match(backup.stderr, /it is a symbolic link \(PKI_ERR_AUDIT_WRITE\)/);
  });

  it('a byte that is not UTF-8 where the record had U+FFFD: named, though it decodes to the same text', async () => {
    const stateDir = copy('utf8');
    // A refusal whose record holds U+FFFD (EF BF BD), as the operator typed it.
    assert.equal((await runPki(['--state', stateDir, 'revoke', 'press-\ufffd'])).code, 1);
    assert.equal((await runPki(['--state', stateDir, 'audit', '--verify'])).code, 0);
    const path = auditLogPath(stateDir);
    const bytes = readFileSync(path);
    const at = bytes.indexOf(Buffer.from('\ufffd'));
    assert.ok(at > 0);
    // One byte that is not UTF-8 in the place of those three: a lenient decoder reads U+FFFD again.
    writeFileSync(path, Buffer.concat([bytes.subarray(0, at), Buffer.from([0xff]), bytes.subarray(at + 3)]));
    const run = await runPki(['--state', stateDir, 'audit', '--verify']);
    assert.equal(run.code, 1, run.stdout);
    assert.match(run.stderr, /line 4 is not UTF-8: its bytes were altered \(PKI_ERR_AUDIT_BROKEN\)/);
  });

  it('a line of 32 MiB and JSON nested a million deep, each with a hash of its own: named, no crash', async () => {
    for (const [name, line] of [
      ['long', hashedLine(`{"seq":4,"pad":"${'x'.repeat(32 * 1024 * 1024)}"}`)],
      ['deep', hashedLine(`{"seq":4,"deep":${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}}`)],
    ] as const) {
      const stateDir = copy(name);
      appendFileSync(auditLogPath(stateDir), `${line}\n`);
      const run = await pkiProcess(stateDir, 'audit', '--verify');
      assert.equal(run.hung, false, name);
      assert.equal(run.code, 1, `${name}: ${run.stdout}`);
      assert.match(run.stderr, /line 4 is not a record of this log \(fields missing\)/, name);
    }
  });
});

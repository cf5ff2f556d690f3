/**
 * The PKI audit log as operators meet it: every `dmz-pki` command that changes the CA leaves a
 * record (who, what it acted on, the outcome) before it reports success; a refusal is recorded with
 * its code and changes nothing; a log that cannot be written stops the command with the store as
 * it was; processes running at once keep one intact chain; and no secret reaches the file.
 * Commands run in this process (runPkiCli) on real state directories, except where processes
 * themselves are the point (concurrency).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { auditLogPath } from '../../pki/audit-log.ts';
import type { AuditRecord } from '../../pki/audit-record.ts';
import { CommandAudit } from '../../pki/audit-trail.ts';
import { openState } from '../../pki/state.ts';
import { statePath } from '../../pki/state-layout.ts';
import { createCaState, enrollInProcess } from '../support/ca-state.ts';
import { runPki, spawnPki, type PkiRun } from '../support/pki-cli.ts';

const CA_PASSPHRASE = 'correct horse battery staple';
const BACKUP_PASSPHRASE = 'k3Vq8xW1pZr7Ls0YdN4mT6bJ';
const WRONG_PASSPHRASE = 'not the passphrase Zq81';
const ENV = { DMZ_PKI_PASSPHRASE: CA_PASSPHRASE, DMZ_BACKUP_PASSPHRASE: BACKUP_PASSPHRASE };
const CONCURRENT_COMMANDS = 8;

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'dmz-pki-audit-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

function pkiIn(stateDir: string, ...args: string[]): Promise<PkiRun> {
  return runPki(['--state', stateDir, ...args], ENV);
}

function assertExit(run: PkiRun, code: number): void {
  assert.equal(run.code, code, `exit ${run.code}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
}

function records(stateDir: string): AuditRecord[] {
  const text = readFileSync(auditLogPath(stateDir), 'utf8');
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as AuditRecord);
}

function lastRecord(stateDir: string): AuditRecord {
  const all = records(stateDir);
  const last = all.at(-1);
  assert.ok(last !== undefined, 'the log has records');
  return last;
}

async function assertIntact(stateDir: string): Promise<void> {
  const run = await pkiIn(stateDir, 'audit', '--verify');
  assertExit(run, 0);
  assert.match(run.stdout, /^intact: \d+ record\(s\)/);
}

/** What a command might change: the store's tokens and certificates, the relay's pair, the CRL. */
async function snapshot(stateDir: string): Promise<string> {
  const tokens = await pkiIn(stateDir, 'token', 'list', '--all', '--json');
  const agents = await pkiIn(stateDir, 'agents', '--json');
  const files = ['relayCertificate', 'relayKey', 'crl'] as const;
  return [
    tokens.stdout,
    agents.stdout,
    ...files.map((file) => readFileSync(statePath(stateDir, file), 'utf8')),
  ].join('\n');
}

/** A CA with its key encrypted, made by `dmz-pki init`, with press-9 enrolled and a used token. */
async function encryptedCa(name: string): Promise<{ stateDir: string; serial: string }> {
  const stateDir = join(root, name);
  const passphraseFile = join(root, `${name}.pass`);
  await writeFile(passphraseFile, `${CA_PASSPHRASE}\n`, { mode: 0o600 });
  const init = await runPki(
    [
      '--state',
      stateDir,
      'init',
      '--trust-domain',
      'plant.test',
      '--dns',
      'relay.plant.test',
      '--passphrase-file',
      passphraseFile,
    ],
    {},
  );
  assertExit(init, 0);
  const enrolled = await enrollInProcess(stateDir, 'ot', 'press-9', { passphrase: CA_PASSPHRASE });
  return { stateDir, serial: enrolled.serialHex };
}

describe('pki audit log - what each command records', () => {
  let stateDir: string;
  let serial: string;
  before(async () => {
    ({ stateDir, serial } = await encryptedCa('commands'));
  });

  it('every command that changes the CA writes its record: user, command, what it acted on, outcome', async () => {
    const created = await pkiIn(stateDir, 'token', 'create', '--name', 'press-7', '--role', 'ot', '--json');
    assertExit(created, 0);
    const { jti } = JSON.parse(created.stdout) as { jti: string };
    assertExit(await pkiIn(stateDir, 'token', 'revoke', jti), 0);
    // Without the passphrase the CRL is left to the relay: the `crl` that follows reissues it.
    const revoked = await runPki(
      ['--state', stateDir, 'revoke', 'press-9', '--reason', 'decommissioned'],
      {},
    );
    assertExit(revoked, 0);
    assertExit(await pkiIn(stateDir, 'crl'), 0);
    const reissued = await pkiIn(stateDir, 'relay-cert', '--dns', 'relay2.plant.test', '--json');
    assertExit(reissued, 0);
    const backupFile = join(root, 'commands.backup');
    assertExit(await pkiIn(stateDir, 'backup', '--out', backupFile), 0);
    const restored = join(root, 'commands-restored');
    assertExit(await pkiIn(restored, 'restore', '--in', backupFile), 0);

    const log = records(stateDir);
    assert.deepEqual(
      log.map((r) => `${r.seq} ${r.command} ${r.outcome}`),
      [
        '1 init ok',
        '2 token create ok',
        '3 token revoke ok',
        '4 revoke ok',
        '5 crl ok',
        '6 relay-cert ok',
        '7 backup ok',
      ],
      "the enrollment of press-9 is the relay's to audit (its own log), not dmz-pki's",
    );
    const me = { uid: process.getuid?.(), name: userInfo().username };
    for (const record of log) {
      assert.equal(record.user.uid, me.uid);
      assert.equal(record.user.name, me.name);
      assert.ok(Date.now() - Date.parse(record.time) < 10 * 60_000, `${record.command}: a time of this run`);
    }
    const [init, create, revokeToken, revoke, crl, relayCert, backup] = log;
    assert.equal(init?.target.trustDomain, 'plant.test');
    assert.equal(init?.target.keysEncrypted, true);
    assert.deepEqual([create?.target.name, create?.target.role, create?.target.jti], ['press-7', 'ot', jti]);
    assert.equal(revokeToken?.target.jti, jti);
    assert.deepEqual(
      [revoke?.target.target, revoke?.target.reason, revoke?.target.serials],
      ['press-9', 'decommissioned', [serial]],
    );
    assert.equal(crl?.target.revokedSerials, 1);
    assert.equal(relayCert?.target.serial, (JSON.parse(reissued.stdout) as { serial: string }).serial);
    assert.deepEqual(relayCert?.target.dnsNames, ['relay2.plant.test']);
    assert.equal(backup?.target.file, backupFile);

    // The restored log is the backup's, its chain going on with the restore's own record; the
    // backup's record came after the backup and stays with the old appliance.
    const again = records(restored);
    assert.deepEqual(
      again.map((r) => r.command),
      ['init', 'token create', 'token revoke', 'revoke', 'crl', 'relay-cert', 'restore'],
    );
    assert.equal(again.at(-1)?.target.file, backupFile);
    assert.equal(again.at(-1)?.prev, log[5]?.hash);
    await assertIntact(stateDir);
    await assertIntact(restored);
  });

  it('read-only commands write nothing: token list, agents, status, audit, a crl that is current', async () => {
    const logBefore = readFileSync(auditLogPath(stateDir), 'utf8');
    for (const args of [
      ['token', 'list'],
      ['agents'],
      ['status'],
      ['audit'],
      ['audit', '--verify'],
      ['crl'],
    ]) {
      assertExit(await pkiIn(stateDir, ...args), 0);
    }
    assert.equal(readFileSync(auditLogPath(stateDir), 'utf8'), logBefore);
  });

  it('audit lists the records as a table and as JSON', async () => {
    const table = await pkiIn(stateDir, 'audit');
    assertExit(table, 0);
    const [header, first] = table.stdout.split('\n');
    assert.match(header ?? '', /^SEQ\s+TIME\s+USER\s+COMMAND\s+OUTCOME\s+TARGET$/);
    assert.match(
      first ?? '',
      new RegExp(`^1\\s+\\S+\\s+${userInfo().username}\\s+init\\s+ok\\s+trustDomain=plant.test`),
    );
    const json = JSON.parse((await pkiIn(stateDir, 'audit', '--json')).stdout) as AuditRecord[];
    assert.deepEqual(json, records(stateDir));
  });
});

describe('pki audit log - refusals', () => {
  let stateDir: string;
  let usedJti: string;
  before(async () => {
    ({ stateDir } = await encryptedCa('refusals'));
    usedJti = (
      JSON.parse((await pkiIn(stateDir, 'token', 'list', '--all', '--json')).stdout) as { jti: string }[]
    )[0]!.jti;
  });

  const refusals = [
    {
      name: 'revoking a token that was used',
      args: () => ['token', 'revoke', usedJti],
      code: 'PKI_ERR_TOKEN_USED',
    },
    {
      name: 'revoking an agent that does not exist',
      args: () => ['revoke', 'plc-never'],
      code: 'PKI_ERR_NOT_FOUND',
    },
    {
      name: 'a token for a name held under the other role',
      args: () => ['token', 'create', '--name', 'press-9', '--role', 'it'],
      code: 'PKI_ERR_NAME_TAKEN',
    },
    {
      name: 'a wrong CA key passphrase',
      args: () => ['relay-cert'],
      code: 'PKI_ERR_PASSPHRASE',
      env: { DMZ_PKI_PASSPHRASE: WRONG_PASSPHRASE },
    },
    {
      name: 'a restore over the CA',
      args: () => ['restore', '--in', join(root, 'never-read.backup')],
      code: 'PKI_ERR_RESTORE_NOT_EMPTY',
    },
    {
      name: 'init over the CA',
      args: () => ['init', '--trust-domain', 'other.test', '--dns', 'x.test'],
      code: 'PKI_ERR_ALREADY_INITIALIZED',
    },
  ];
  for (const refusal of refusals) {
    it(`records ${refusal.name} as refused (${refusal.code}) and changes nothing`, async () => {
      const state = await snapshot(stateDir);
      const count = records(stateDir).length;
      const run = await runPki(['--state', stateDir, ...refusal.args()], { ...ENV, ...refusal.env });
      assertExit(run, 1);
      assert.match(run.stderr, new RegExp(`\\(${refusal.code}\\)`));
      const record = lastRecord(stateDir);
      assert.equal(record.seq, count + 1);
      assert.deepEqual([record.outcome, record.code], ['refused', refusal.code]);
      assert.equal(
        record.command,
        refusal.args()[0] === 'token' ? refusal.args().slice(0, 2).join(' ') : refusal.args()[0],
      );
      assert.equal(await snapshot(stateDir), state);
      await assertIntact(stateDir);
    });
  }
});

describe('pki audit log - a log that cannot be written fails the command closed', () => {
  const logs = [
    {
      name: 'a directory where the log is',
      code: 'PKI_ERR_AUDIT_WRITE',
      spoil: (log: string) => {
        renameSync(log, `${log}.kept`);
        mkdirSync(log);
      },
    },
    {
      name: 'a symbolic link to /dev/full where the log is',
      code: 'PKI_ERR_AUDIT_WRITE',
      spoil: (log: string) => {
        renameSync(log, `${log}.kept`);
        symlinkSync('/dev/full', log);
      },
    },
    {
      name: 'a log others may read',
      code: 'PKI_ERR_STATE_PERMISSIONS',
      spoil: (log: string) => chmodSync(log, 0o644),
    },
  ];
  let template: string;
  before(async () => {
    ({ stateDir: template } = await encryptedCa('closed-template'));
  });

  for (const [index, log] of logs.entries()) {
    it(`${log.name}: token create, revoke, relay-cert and backup fail (${log.code}), the store unchanged`, async () => {
      const stateDir = join(root, `closed-${index}`);
      cpSync(template, stateDir, { recursive: true });
      log.spoil(auditLogPath(stateDir));
      const state = await snapshot(stateDir);
      const backupFile = join(root, `closed-${index}.backup`);
      const commands = [
        ['token', 'create', '--name', 'press-7', '--role', 'ot'],
        ['revoke', 'press-9'],
        ['relay-cert'],
        ['backup', '--out', backupFile],
      ];
      for (const args of commands) {
        const run = await pkiIn(stateDir, ...args);
        assertExit(run, 1);
        assert.match(run.stderr, new RegExp(`\\(${log.code}\\)`), args.join(' '));
        assert.equal(run.stdout, '', `${args.join(' ')}: nothing reported, no token printed`);
      }
      assert.equal(await snapshot(stateDir), state);
      assert.equal(existsSync(backupFile), false);
    });
  }

  it('a record that cannot be written rolls back the change it was to record', async () => {
    const stateDir = join(root, 'closed-rollback');
    cpSync(template, stateDir, { recursive: true });
    const state = await openState(stateDir);
    try {
      // Past the command's first check: the log turns unwritable between it and the record.
      rmSync(auditLogPath(stateDir));
      mkdirSync(auditLogPath(stateDir));
      const audit = new CommandAudit(state, 'revoke');
      assert.throws(
        () => audit.commit(() => state.store.revokeCertificates('press-9', 'unspecified', new Date())),
        { code: 'PKI_ERR_AUDIT_WRITE' },
      );
      assert.deepEqual(
        state.store.findCertificates('press-9').map((c) => c.status),
        ['valid'],
      );
    } finally {
      state.close();
    }
  });

  const mountable = process.getuid?.() === 0 && process.platform === 'linux';
  it(
    'a full disk: the record is cut back, the change rolled back, the log as it was',
    { skip: !mountable && 'mounting a tmpfs needs root' },
    async () => {
      const mount = join(root, 'full-disk');
      mkdirSync(mount);
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mount]);
      try {
        const stateDir = join(mount, 'state');
        await createCaState(stateDir);
        const logBefore = readFileSync(auditLogPath(stateDir));
        // Opened first: SQLite has its files in place, and the log's record is what meets the full disk.
        const state = await openState(stateDir);
        try {
          fillDevice(join(mount, 'filler'));
          const audit = new CommandAudit(state, 'token create');
          // Longer than a page: whatever room the log's last page has left, it cannot hold it.
          audit.about({
            urls: Array.from({ length: 8 }, (_, n) => `https://relay-${n}.plant.test/${'p'.repeat(500)}`),
          });
          const token = { jti: 'jti-on-a-full-disk', name: 'press-7', role: 'ot' as const };
          const expiresAt = new Date(Date.now() + 60_000);
          assert.throws(
            () => audit.commit(() => state.store.recordToken({ ...token, createdAt: new Date(), expiresAt })),
            {
              code: 'PKI_ERR_AUDIT_WRITE',
              message: /no space left on the device/,
            },
          );
          assert.deepEqual(state.store.listTokens({ includeSpent: true }), []);
          assert.deepEqual(readFileSync(auditLogPath(stateDir)), logBefore);
        } finally {
          state.close();
          rmSync(join(mount, 'filler'), { force: true });
        }
        await assertIntact(stateDir);
      } finally {
        execFileSync('umount', [mount]);
      }
    },
  );
});

/** Writes `path` until the device has no room left. */
function fillDevice(path: string): void {
  try {
    execFileSync('dd', ['if=/dev/zero', `of=${path}`, 'bs=4096'], { stdio: 'ignore' });
  } catch {
    // dd ends with ENOSPC: the device is full.
  }
}

describe('pki audit log - concurrency and secrets', () => {
  it(`${CONCURRENT_COMMANDS} dmz-pki processes at once: every record there, the chain intact`, async () => {
    const stateDir = join(root, 'concurrent');
    await createCaState(stateDir);
    // Half make tokens (a change and its record in one transaction), half are refused (a record alone).
    const creates = Array.from({ length: CONCURRENT_COMMANDS / 2 }, (_, n) =>
      spawnPki(['--state', stateDir, 'token', 'create', '--name', `agent-${n}`, '--role', 'ot', '--json']),
    );
    const refusals = Array.from({ length: CONCURRENT_COMMANDS / 2 }, (_, n) =>
      spawnPki(['--state', stateDir, 'revoke', `never-${n}`]),
    );
    const [created, refused] = await Promise.all([Promise.all(creates), Promise.all(refusals)]);
    for (const run of created) assertExit(run, 0);
    for (const run of refused) assertExit(run, 1);
    const log = records(stateDir);
    assert.deepEqual(
      log.map((r) => r.seq),
      Array.from({ length: CONCURRENT_COMMANDS + 1 }, (_, n) => n + 1),
    );
    const made = log.filter((r) => r.command === 'token create').map((r) => r.target.jti);
    const jtis = created.map((run) => (JSON.parse(run.stdout) as { jti: string }).jti);
    assert.deepEqual(made.sort(), jtis.sort());
    const targets = log.filter((r) => r.outcome === 'refused').map((r) => r.target.target);
    assert.deepEqual(targets.sort(), refusals.map((_, n) => `never-${n}`).sort());
    await assertIntact(stateDir);
  });

  it('no token, passphrase or key reaches the log', async () => {
    const { stateDir } = await encryptedCa('secrets');
    const created = await pkiIn(stateDir, 'token', 'create', '--name', 'press-7', '--role', 'ot');
    assertExit(created, 0);
    const token = created.stdout.trim();
    assertExit(await pkiIn(stateDir, 'backup', '--out', join(root, 'secrets.backup')), 0);
    assertExit(
      await runPki(['--state', stateDir, 'relay-cert'], { DMZ_PKI_PASSPHRASE: WRONG_PASSPHRASE }),
      1,
    );
    const text = readFileSync(auditLogPath(stateDir), 'utf8');
    const keyBody = (file: 'caKey' | 'tokenSigningKey' | 'relayKey') =>
      readFileSync(statePath(stateDir, file), 'utf8').split('\n')[1] ?? '';
    const secrets = {
      token,
      "the token's signature": token.split('.')[2] ?? '',
      'the CA key passphrase': CA_PASSPHRASE,
      'the wrong passphrase': WRONG_PASSPHRASE,
      'the backup passphrase': BACKUP_PASSPHRASE,
      'the CA key': keyBody('caKey'),
      'the token-signing key': keyBody('tokenSigningKey'),
      "the relay's key": keyBody('relayKey'),
    };
    for (const [what, secret] of Object.entries(secrets)) {
      assert.ok(secret.length >= 5, `${what} was found to look for`);
      assert.equal(text.includes(secret), false, `${what} is in the audit log`);
    }
    assert.equal(records(stateDir).length, 4, 'init, token create, backup, the refused relay-cert');
  });
});

/**
 * `dmz-pki backup` and `restore` as an operator moves an appliance: a backup taken while the relay
 * runs and agents enroll through its enrollment port, the old appliance gone, the backup restored
 * into an empty directory, and a relay started on it that accepts the same agents over real mTLS
 * and refuses the revoked one. Then every way a restore must refuse, each leaving nothing behind.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import {
  chmod,
  chown,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { loadCredentials, type AgentCredentialSet } from '../../agents/credentials.ts';
import { enrollAgent } from '../../agents/enroll.ts';
import { RelayLink } from '../../agents/link/relay-link.ts';
import { decodeArchive, encodeArchive } from '../../pki/backup-archive.ts';
import { openBackup, sealBackup } from '../../pki/backup-envelope.ts';
import { runPkiCli } from '../../pki/cli.ts';
import { restoreBackup } from '../../pki/restore.ts';
import { openState } from '../../pki/state.ts';
import type { Role } from '../../relay/protocol/identity.ts';
import type { RunningRelay } from '../../relay/server/relay.ts';
import { CA_STATE_TRUST_DOMAIN, createCaState, startCaStateRelay } from '../support/ca-state.ts';

const PASSPHRASE = 'k3Vq8xW1pZr7Ls0YdN4mT6bJ'; // as `openssl rand -base64 18` makes one
const ENV = { DMZ_BACKUP_PASSPHRASE: PASSPHRASE };
const posixModes = process.platform !== 'win32';

/** dmz-pki in this process, output captured. */
async function pki(args: readonly string[], env: Record<string, string> = ENV) {
  let stdout = '';
  let stderr = '';
  const code = await runPkiCli(args, env, {
    stdout: (data) => void (stdout += typeof data === 'string' ? data : Buffer.from(data).toString()),
    stderr: (text) => void (stderr += text),
  });
  return { code, stdout, stderr };
}

function relayConfigFile(state: string): string {
  // JSON is YAML: the same settings startCaStateRelay gives the relay, as a file an operator keeps.
  return `${JSON.stringify({ trustDomain: CA_STATE_TRUST_DOMAIN, state, policy: [{ role: 'ot' }] }, null, 2)}\n`;
}

async function modeOf(path: string): Promise<number> {
  return (await stat(path)).mode & 0o777;
}

describe('dmz-pki backup and restore', () => {
  let dir: string;
  let state: string;
  let configPath: string;
  let relay: RunningRelay;
  let backupFile: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dmz-backup-'));
    state = join(dir, 'old-appliance', 'state');
    configPath = join(dir, 'old-appliance', 'relay.yaml');
    await createCaState(state);
    await writeFile(configPath, relayConfigFile(state));
    ({ relay } = await startCaStateRelay(state, { enrollment: 'on' }));
    backupFile = join(dir, 'relay.backup');
  });
  after(async () => {
    await relay.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** A token from the CLI, redeemed at the relay's enrollment port as `dmz-agent enroll` does. */
  async function enroll(name: string, role: Role): Promise<AgentCredentialSet> {
    const url = `https://127.0.0.1:${relay.enrollmentPort}`;
    const made = await pki([
      '--state',
      state,
      'token',
      'create',
      '--name',
      name,
      '--role',
      role,
      '--url',
      url,
    ]);
    assert.equal(made.code, 0, made.stderr);
    const agentDir = join(dir, 'agents', name);
    await enrollAgent({ token: made.stdout.trim(), dir: agentDir });
    return loadCredentials(agentDir);
  }

  it('takes a backup while agents enroll; the restored appliance accepts them and refuses the revoked', async () => {
    const press = await enroll('press-1', 'ot');
    const historian = await enroll('historian', 'it');
    const laptop = await enroll('stolen-laptop', 'it');
    const revoked = await pki(['--state', state, 'revoke', 'stolen-laptop', '--reason', 'stolen']);
    assert.equal(revoked.code, 0, revoked.stderr);
    const spare = await pki(['--state', state, 'token', 'create', '--name', 'spare', '--role', 'ot']);
    assert.equal(spare.code, 0, spare.stderr);

    // Agents enrolling at the relay (its own store connection) while the backup is taken.
    const late = ['late-1', 'late-2', 'late-3', 'late-4'];
    const [backup] = await Promise.all([
      pki(['--state', state, 'backup', '--out', backupFile, '--config', configPath, '--json']),
      ...late.map((name) => enroll(name, 'ot')),
    ]);
    assert.equal(backup.code, 0, backup.stderr);
    const summary = JSON.parse(backup.stdout) as { files: string[]; bytes: number };
    assert.ok(summary.files.includes('pki.db') && summary.files.includes('ca-key.pem'));
    assert.ok(summary.files.includes('relay.yaml'));
    if (posixModes) assert.equal(await modeOf(backupFile), 0o600);
    // The old appliance is gone.
    await relay.close();

    const restored = join(dir, 'new-appliance', 'state');
    const restoredConfig = join(dir, 'new-appliance', 'relay.yaml');
    const restore = await pki([
      '--state',
      restored,
      'restore',
      '--in',
      backupFile,
      '--config',
      restoredConfig,
    ]);
    assert.equal(restore.code, 0, restore.stderr);
    // The spare, and any late token created but not yet redeemed when the snapshot was taken.
    const revokedTokens = Number(/revoked (\d+) enrollment token\(s\) outstanding/.exec(restore.stderr)?.[1]);
    assert.ok(revokedTokens >= 1 && revokedTokens <= 1 + late.length, restore.stderr);
    assert.equal(await readFile(restoredConfig, 'utf8'), relayConfigFile(state));
    // It is the old appliance's, byte for byte: where it differs from here, restore says so.
    assert.match(
      restore.stderr,
      /the restored configuration names the state directory ".*old-appliance\/state", not ".*new-appliance\/state": set "state"/,
    );
    if (posixModes) {
      assert.equal(await modeOf(restored), 0o700);
      for (const name of await readdir(restored))
        assert.equal(await modeOf(join(restored, name)), 0o600, name);
    }

    // The store is one consistent snapshot: intact, and every certificate linked to a token has it.
    const db = new Database(join(restored, 'pki.db'), { readonly: true });
    try {
      assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
      const dangling = db
        .prepare(
          `SELECT jti FROM tokens WHERE used_by_serial IS NOT NULL
           AND used_by_serial NOT IN (SELECT serial_hex FROM certificates)`,
        )
        .all();
      assert.deepEqual(dangling, []);
    } finally {
      db.close();
    }
    const restoredState = await openState(restored);
    try {
      const names = new Set(restoredState.store.listCertificates().map((c) => c.name));
      for (const name of ['press-1', 'historian', 'stolen-laptop']) assert.ok(names.has(name), name);
      const [laptopRecord] = restoredState.store.findCertificates('stolen-laptop');
      assert.equal(laptopRecord?.status, 'revoked');
      // The spare token may have been used on the old appliance after the backup: not usable here.
      assert.deepEqual(restoredState.store.listTokens(), []);
    } finally {
      restoredState.close();
    }

    // A relay on the restored state: the same agents, unchanged credentials, real mTLS.
    const next = await startCaStateRelay(restored);
    relay = next.relay;
    const connect = (credentials: AgentCredentialSet) =>
      RelayLink.connect({
        url: `wss://127.0.0.1:${next.relay.agentPort}/v1/agent`,
        certPem: credentials.certPem,
        keyPem: credentials.keyPem,
        caPem: credentials.caPem,
        connectTimeoutMs: 5000,
      });
    const pressLink = await connect(press);
    const historianLink = await connect(historian);
    assert.equal(historianLink.welcome.name, 'historian');
    const { session } = await historianLink.openSession('press-1', 'press-1/#');
    assert.ok(session > 0);
    await assert.rejects(connect(laptop));
    await next.audit.waitFor(
      (entry) => entry.event === 'agent.refused' && entry['detail'] === 'CERT_REVOKED',
      'the revoked agent refused at the handshake',
    );
    await Promise.all([pressLink.close(), historianLink.close()]);
  });

  it('refuses a wrong passphrase, a truncated file and a flipped byte, and writes nothing', async () => {
    const file = await readFile(backupFile);
    const truncated = join(dir, 'truncated.backup');
    const altered = join(dir, 'altered.backup');
    await writeFile(truncated, file.subarray(0, file.length - 100));
    const flipped = Buffer.from(file);
    flipped.writeUInt8(flipped.readUInt8(file.length >> 1) ^ 0x80, file.length >> 1);
    await writeFile(altered, flipped);
    const cases: readonly [string, string, Record<string, string>, RegExp][] = [
      [
        'wrong passphrase',
        backupFile,
        { DMZ_BACKUP_PASSPHRASE: 'another passphrase, 24+ chars' },
        /PKI_ERR_BACKUP_PASSPHRASE\b/,
      ],
      ['no passphrase', backupFile, {}, /no backup passphrase was given \(PKI_ERR_BACKUP_PASSPHRASE\)/],
      ['truncated', truncated, ENV, /truncated or altered .*\(PKI_ERR_BACKUP_DAMAGED\)/],
      ['a flipped byte', altered, ENV, /truncated or altered .*\(PKI_ERR_BACKUP_DAMAGED\)/],
      ['not a backup', configPath, ENV, /not a dmz-relay backup .*\(PKI_ERR_BACKUP_DAMAGED\)/],
    ];
    for (const [name, path, env, expected] of cases) {
      const target = join(dir, `restore-${name.replaceAll(' ', '-')}`);
      const run = await pki(['--state', target, 'restore', '--in', path], env);
      assert.equal(run.code, 1, `${name}: ${run.stderr}`);
      assert.match(run.stderr, expected, name);
      assert.equal(existsSync(target), false, `${name}: nothing written`);
    }
  });

  it('refuses a state directory that is not empty, and leaves it as it was', async () => {
    const occupied = join(dir, 'occupied');
    await mkdir(occupied, { mode: 0o700 });
    await writeFile(join(occupied, 'ca.pem'), 'the CA already here');
    const run = await pki(['--state', occupied, 'restore', '--in', backupFile]);
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /PKI_ERR_RESTORE_NOT_EMPTY/);
    assert.deepEqual(await readdir(occupied), ['ca.pem']);
    assert.equal(await readFile(join(occupied, 'ca.pem'), 'utf8'), 'the CA already here');

    // An empty directory open to others is refused, not tightened behind the operator's back.
    if (posixModes) {
      const open = join(dir, 'open');
      await mkdir(open, { mode: 0o755 });
      await chmod(open, 0o755);
      const refused = await pki(['--state', open, 'restore', '--in', backupFile]);
      assert.equal(refused.code, 1, refused.stderr);
      assert.match(refused.stderr, /is open to group or others \(PKI_ERR_STATE_PERMISSIONS\)/);
      assert.deepEqual(await readdir(open), []);
    }

    // An empty directory is taken, and the configuration lands in it when no --config is given.
    const empty = join(dir, 'empty');
    await mkdir(empty, { mode: 0o700 });
    const into = await pki(['--state', empty, 'restore', '--in', backupFile, '--json']);
    assert.equal(into.code, 0, into.stderr);
    assert.equal((JSON.parse(into.stdout) as { configPath: string }).configPath, join(empty, 'relay.yaml'));
  });

  it(
    "refuses another user's empty directory: run restore as the relay's user",
    { skip: process.getuid?.() !== 0 && 'only root can make a directory of another user' },
    async () => {
      const theirs = join(dir, 'theirs');
      await mkdir(theirs, { mode: 0o700 });
      await chown(theirs, 65534, 65534);
      const run = await pki(['--state', theirs, 'restore', '--in', backupFile]);
      assert.equal(run.code, 1, run.stderr);
      assert.match(run.stderr, /belongs to uid 65534, not to this user .*\(PKI_ERR_STATE_PERMISSIONS\)/);
      assert.deepEqual(await readdir(theirs), []);
    },
  );

  it('never writes through, nor removes, a symbolic link at --config, even one that leads nowhere', async () => {
    const link = join(dir, 'operator-link.yaml');
    await symlink(join(dir, 'nowhere', 'relay.yaml'), link);
    const target = join(dir, 'restore-link', 'state');
    const run = await pki(['--state', target, 'restore', '--in', backupFile, '--config', link]);
    assert.equal(run.code, 1, run.stderr);
    assert.match(
      run.stderr,
      /cannot write the relay configuration .*operator-link\.yaml": it already exists/,
    );
    assert.ok((await lstat(link)).isSymbolicLink(), 'the link is left as it was');
    assert.equal(existsSync(join(dir, 'nowhere')), false);
    assert.equal(existsSync(join(dir, 'restore-link')), false);

    // Nor at --state: a dangling link is refused, and left.
    const stateLink = join(dir, 'state-link');
    await symlink(join(dir, 'nowhere'), stateLink);
    const refused = await pki(['--state', stateLink, 'restore', '--in', backupFile]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /it is a symbolic link to nothing/);
    assert.ok((await lstat(stateLink)).isSymbolicLink(), 'the link is left as it was');
  });

  it('refuses to overwrite a backup, a short passphrase, and a configuration of another relay', async () => {
    const before = await readFile(backupFile);
    const again = await pki(['--state', join(dir, 'empty'), 'backup', '--out', backupFile]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /it already exists \(CLI_ERR_FILE\); give a new file name/);
    assert.deepEqual(await readFile(backupFile), before);

    const short = join(dir, 'short.backup');
    const weak = await pki(['--state', join(dir, 'empty'), 'backup', '--out', short], {
      DMZ_BACKUP_PASSPHRASE: 'tooshort',
    });
    assert.equal(weak.code, 1);
    assert.match(weak.stderr, /PKI_ERR_BACKUP_PASSPHRASE_WEAK/);
    assert.equal(existsSync(short), false);

    const other = await pki([
      '--state',
      join(dir, 'empty'),
      'backup',
      '--out',
      short,
      '--config',
      configPath,
    ]);
    assert.equal(other.code, 2, other.stderr);
    assert.match(other.stderr, /is the configuration of a relay on/);
    assert.equal(existsSync(short), false);
  });

  it('removes what it wrote, SQLite files included, when the restored state fails its check', async () => {
    // Sealed by the passphrase holder, yet naming another CA than the store it carries.
    const archive = decodeArchive(await openBackup(await readFile(backupFile), PASSPHRASE));
    const file = await sealBackup(encodeArchive({ ...archive, caFingerprint: 'sha256:00' }), PASSPHRASE);
    const target = join(dir, 'checked');
    await mkdir(target, { mode: 0o700 });
    await assert.rejects(restoreBackup({ file, passphrase: PASSPHRASE, stateDir: target }), {
      code: 'PKI_ERR_BACKUP_DAMAGED',
      message: /does not name the backup's CA/,
    });
    assert.deepEqual(await readdir(target), [], 'the directory it was given is left, empty');
  });

  it('refuses a sealed archive that names a path outside the state directory, writing nothing', async () => {
    // Only the passphrase holder can make one, yet restore trusts no name it has not checked.
    const evil = Buffer.from(
      JSON.stringify({
        format: 1,
        createdAt: new Date().toISOString(),
        trustDomain: CA_STATE_TRUST_DOMAIN,
        caFingerprint: 'sha256:00',
        files: [{ kind: 'state', name: '../escaped', bytes: 4 }],
      }),
    );
    const length = Buffer.alloc(4);
    length.writeUInt32BE(evil.length);
    const file = await sealBackup(Buffer.concat([length, evil, Buffer.from('evil')]), PASSPHRASE);
    const target = join(dir, 'evil', 'state');
    await assert.rejects(restoreBackup({ file, passphrase: PASSPHRASE, stateDir: target }), {
      code: 'PKI_ERR_BACKUP_DAMAGED',
    });
    assert.equal(existsSync(join(dir, 'evil')), false);
    // encodeArchive refuses to write such a manifest in the first place.
    assert.throws(
      () =>
        encodeArchive({
          createdAt: new Date(),
          trustDomain: CA_STATE_TRUST_DOMAIN,
          caFingerprint: 'sha256:00',
          entries: [{ kind: 'state', name: '../escaped', contents: Buffer.alloc(0) }],
        }),
      { code: 'PKI_ERR_BACKUP_DAMAGED' },
    );
  });
});

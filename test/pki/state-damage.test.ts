/**
 * A state file that is there but damaged, as `dmz-pki` and `dmz-relay` meet it: refused with one
 * line naming the file, saying it is damaged and what gives it back, and nothing changed: no
 * revocation behind a failure, no CRL or relay certificate replaced, one audit record (refused).
 * dmz-pki runs in this process (runPkiCli); dmz-relay as a process, bounded, since on a damaged
 * state it must refuse to start rather than run.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { cpSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { openState } from '../../pki/state.ts';
import { CA_STATE_TRUST_DOMAIN, createCaState, enrollInProcess } from '../support/ca-state.ts';
import { runPki, type PkiRun } from '../support/pki-cli.ts';

const RELAY_BIN = fileURLToPath(new URL('../../bin/dmz-relay.js', import.meta.url));
/**
 * A relay refuses a damaged state within a second of its start; one that starts anyway (it did on
 * a CA key of another CA) is stopped (SIGTERM) after this, and fails the case by its exit status.
 */
const RELAY_BOUND_MS = 15_000;
const PASSPHRASE = 'correct horse battery staple';
const RESTORE_HINT =
  "restore the state from its backup into an empty directory ('dmz-pki --state NEW_DIR restore --in BACKUP'); do not run init over it";

/** Every file of the state directory with its contents: "nothing changed on disk". */
function snapshot(dir: string): Record<string, string> {
  return Object.fromEntries(
    readdirSync(dir)
      .sort()
      .map((file) => [file, readFileSync(join(dir, file)).toString('base64')]),
  );
}

function auditRecords(dir: string): { command?: string; outcome?: string; code?: string }[] {
  return readFileSync(join(dir, 'pki-audit.jsonl'), 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as { command?: string; outcome?: string; code?: string });
}

/** `the CA state in DIR is damaged: FILE: why (PKI_ERR_STATE_DAMAGED); hint`, as both CLIs print it. */
function damagedLine(program: string, dir: string, file: string, why: string, hint: string): string {
  const q = JSON.stringify;
  return `${program}: the CA state in ${q(dir)} is damaged: ${q(join(dir, file))}: ${why} (PKI_ERR_STATE_DAMAGED); ${hint}`;
}

function relayCertHint(dir: string, names = ''): string {
  return `make the relay a new key and certificate: 'dmz-pki --state ${JSON.stringify(dir)} relay-cert${names}', run as the owner of the state directory (${userInfo().username})`;
}

/** `dmz-relay --config FILE` as a process, with no passphrase from the shell. */
function runRelayProcess(config: string): Promise<PkiRun> {
  const env = { ...process.env };
  delete env.DMZ_PKI_PASSPHRASE;
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [RELAY_BIN, '--config', config],
      { env, encoding: 'utf8', timeout: RELAY_BOUND_MS },
      (error, stdout, stderr) => {
        if (error !== null && typeof error.code !== 'number' && error.signal === null)
          reject(new Error('dmz-relay did not run', { cause: error }));
        else resolve({ code: error === null ? 0 : Number(error.code ?? -1), stdout, stderr });
      },
    );
  });
}

function firstLine(run: PkiRun): string {
  return run.stderr.split('\n')[0] ?? '';
}

describe('state damage - a damaged key or certificate of the CA state', { concurrency: false }, () => {
  let root: string;
  /** A CA with agent press-1 enrolled and a token for press-2 outstanding; each case copies it. */
  let pristine: string;
  /** The same, with its keys encrypted under PASSPHRASE. */
  let pristineLocked: string;
  let copies = 0;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'dmz-state-damage-'));
    pristine = join(root, 'pristine');
    pristineLocked = join(root, 'pristine-locked');
    await createCaState(pristine);
    await createCaState(pristineLocked, { passphrase: PASSPHRASE });
    for (const [dir, passphrase] of [
      [pristine, undefined],
      [pristineLocked, PASSPHRASE],
    ] as const) {
      await enrollInProcess(dir, 'ot', 'press-1', passphrase === undefined ? {} : { passphrase });
      const env = passphrase === undefined ? {} : { DMZ_PKI_PASSPHRASE: passphrase };
      const token = await runPki(
        ['--state', dir, 'token', 'create', '--name', 'press-2', '--role', 'ot'],
        env,
      );
      assert.equal(token.code, 0, token.stderr);
    }
  });
  after(() => rm(root, { recursive: true, force: true }));

  function copyOf(source: string): string {
    copies += 1;
    const dir = join(root, `case-${copies}`);
    cpSync(source, dir, { recursive: true });
    return dir;
  }

  /** The relay on `dir` as a process, its audit log outside the state. */
  async function runRelay(dir: string): Promise<PkiRun> {
    const config = join(root, `relay-${copies}.yaml`);
    await writeFile(
      config,
      stringify({
        trustDomain: CA_STATE_TRUST_DOMAIN,
        state: dir,
        listen: {
          agents: { host: '127.0.0.1', port: 0 },
          admin: { host: '127.0.0.1', port: 0 },
          enrollment: { host: '127.0.0.1', port: 0, mode: 'off' },
        },
        log: { level: 'warn', audit: join(root, `relay-audit-${copies}.log`) },
        policy: [{ role: 'ot' }],
      }),
    );
    return runRelayProcess(config);
  }

  /** Agent and token statuses as the store holds them. */
  async function statuses(dir: string): Promise<{ certificates: string[]; tokens: string[] }> {
    const state = await openState(dir);
    try {
      return {
        certificates: state.store.listCertificates().map((c) => `${c.name} ${c.status}`),
        tokens: state.store.listTokens({ includeSpent: true }).map((t) => `${t.name} ${t.status}`),
      };
    } finally {
      state.close();
    }
  }

  const anotherRsaKey = () =>
    generateKeyPairSync('rsa', { modulusLength: 2048 })
      .privateKey.export({ type: 'pkcs8', format: 'pem' })
      .toString();
  const truncated = (pem: string) => `${pem.split('\n').slice(0, 8).join('\n')}\n`;

  const caKeyDamages: readonly {
    readonly name: string;
    readonly locked?: boolean;
    readonly damage: (pem: string) => string;
    readonly why: string;
  }[] = [
    { name: 'junk', damage: () => 'junk\n', why: 'it is not a PEM private key' },
    { name: 'truncated', damage: truncated, why: 'it is not a PEM private key' },
    {
      name: "another CA's key",
      damage: anotherRsaKey,
      why: `it is not the key of ${JSON.stringify('CA_DIR/ca.pem')}`,
    },
    {
      name: 'an Ed25519 key',
      damage: () =>
        generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      why: 'it holds a key of type ed25519, not rsa',
    },
    {
      name: 'encrypted, truncated',
      locked: true,
      damage: truncated,
      why: 'it is not a readable encrypted key (PEM)',
    },
  ];

  for (const row of caKeyDamages) {
    const source = () => (row.locked === true ? pristineLocked : pristine);
    const why = (dir: string) => row.why.replace('CA_DIR', dir);
    const damage = (dir: string) => {
      const path = join(dir, 'ca-key.pem');
      writeFileSync(path, row.damage(readFileSync(path, 'utf8')), { mode: 0o600 });
    };

    it(`state damage - revoke with ca-key.pem ${row.name}: exit 1, nothing revoked, one audit record (refused)`, async () => {
      const dir = copyOf(source());
      damage(dir);
      const before = { files: snapshot(dir), statuses: await statuses(dir), audit: auditRecords(dir) };
      // Without a passphrase too: a locked key defers the CRL to the relay, a damaged one is refused.
      for (const target of ['press-1', 'press-2']) {
        const run = await runPki(['--state', dir, 'revoke', target]);
        assert.equal(run.code, 1, run.stderr);
        assert.equal(firstLine(run), damagedLine('dmz-pki', dir, 'ca-key.pem', why(dir), RESTORE_HINT));
        assert.equal(run.stdout, '');
      }
      assert.deepEqual(await statuses(dir), before.statuses, 'no certificate or token revoked');
      const after = snapshot(dir);
      assert.equal(after['crl.pem'], before.files['crl.pem'], 'the CRL is not replaced');
      const added = auditRecords(dir).slice(before.audit.length);
      assert.deepEqual(
        added.map(({ command, outcome, code }) => ({ command, outcome, code })),
        ['revoke', 'revoke'].map((command) => ({
          command,
          outcome: 'refused',
          code: 'PKI_ERR_STATE_DAMAGED',
        })),
      );
    });

    it(`state damage - relay-cert with ca-key.pem ${row.name}: exit 1, the relay's pair kept`, async () => {
      const dir = copyOf(source());
      damage(dir);
      const before = snapshot(dir);
      const env = row.locked === true ? { DMZ_PKI_PASSPHRASE: PASSPHRASE } : {};
      const run = await runPki(['--state', dir, 'relay-cert'], env);
      assert.equal(run.code, 1, run.stderr);
      assert.equal(firstLine(run), damagedLine('dmz-pki', dir, 'ca-key.pem', why(dir), RESTORE_HINT));
      const after = snapshot(dir);
      for (const file of ['relay.pem', 'relay-key.pem', 'crl.pem'])
        assert.equal(after[file], before[file], file);
    });

    it(`state damage - dmz-relay with ca-key.pem ${row.name}: exit 1, names the file`, async () => {
      const dir = copyOf(source());
      damage(dir);
      const run = await runRelay(dir);
      // The locked state's relay is given no passphrase: the damage is seen without one.
      assert.equal(run.code, 1, run.stderr);
      assert.equal(firstLine(run), damagedLine('dmz-relay', dir, 'ca-key.pem', why(dir), RESTORE_HINT));
    });
  }

  it('state damage - crl due for reissue with ca-key.pem damaged: exit 1, the CRL kept', async () => {
    const dir = copyOf(pristineLocked);
    // Revoked without the passphrase: recorded in the store, the CRL left to the relay.
    const revoke = await runPki(['--state', dir, 'revoke', 'press-1']);
    assert.equal(revoke.code, 0, revoke.stderr);
    const path = join(dir, 'ca-key.pem');
    writeFileSync(path, truncated(readFileSync(path, 'utf8')), { mode: 0o600 });
    const before = { crl: readFileSync(join(dir, 'crl.pem')), audit: auditRecords(dir).length };
    const run = await runPki(['--state', dir, 'crl'], { DMZ_PKI_PASSPHRASE: PASSPHRASE });
    assert.equal(run.code, 1, run.stderr);
    assert.equal(
      firstLine(run),
      damagedLine('dmz-pki', dir, 'ca-key.pem', 'it is not a readable encrypted key (PEM)', RESTORE_HINT),
    );
    assert.equal(run.stdout, '');
    assert.deepEqual(readFileSync(join(dir, 'crl.pem')), before.crl);
    assert.deepEqual(
      auditRecords(dir)
        .slice(before.audit)
        .map(({ outcome, code }) => ({ outcome, code })),
      [{ outcome: 'refused', code: 'PKI_ERR_STATE_DAMAGED' }],
    );
  });

  it('state damage - a wrong passphrase is still told as one, not as damage', async () => {
    const dir = copyOf(pristineLocked);
    const run = await runPki(['--state', dir, 'revoke', 'press-1'], { DMZ_PKI_PASSPHRASE: 'wrong' });
    assert.equal(run.code, 1, run.stderr);
    assert.match(
      firstLine(run),
      /^dmz-pki: the passphrase does not decrypt the CA key \(PKI_ERR_PASSPHRASE\)/,
    );
  });

  it('state damage - token create with token-signing-key.pem damaged: exit 1, no token recorded', async () => {
    const dir = copyOf(pristine);
    writeFileSync(join(dir, 'token-signing-key.pem'), anotherRsaKey(), { mode: 0o600 });
    const before = await statuses(dir);
    const run = await runPki(['--state', dir, 'token', 'create', '--name', 'press-3', '--role', 'ot']);
    assert.equal(run.code, 1, run.stderr);
    assert.equal(
      firstLine(run),
      damagedLine(
        'dmz-pki',
        dir,
        'token-signing-key.pem',
        'it holds a key of type rsa, not ed25519',
        RESTORE_HINT,
      ),
    );
    assert.equal(run.stdout, '', 'no token printed');
    assert.deepEqual(await statuses(dir), before);
  });

  it('state damage - dmz-relay with relay-key.pem damaged: names it, says damaged, and relay-cert mends it', async () => {
    const dir = copyOf(pristine);
    writeFileSync(join(dir, 'relay-key.pem'), 'junk\n', { mode: 0o600 });
    const run = await runRelay(dir);
    assert.equal(run.code, 1, run.stderr);
    assert.equal(
      firstLine(run),
      damagedLine('dmz-relay', dir, 'relay-key.pem', 'it is not a PEM private key', relayCertHint(dir)),
    );
    const mend = await runPki(['--state', dir, 'relay-cert']);
    assert.equal(mend.code, 0, mend.stderr);
  });

  it('state damage - relay.pem damaged: the relay names it; relay-cert asks for the names, then mends it', async () => {
    const dir = copyOf(pristine);
    writeFileSync(join(dir, 'relay.pem'), 'junk\n', { mode: 0o600 });
    const line = (program: string) =>
      damagedLine(
        program,
        dir,
        'relay.pem',
        'it is not a PEM certificate',
        relayCertHint(dir, ' --dns NAME... --ip ADDR...'),
      );
    const run = await runRelay(dir);
    assert.equal(run.code, 1, run.stderr);
    assert.equal(firstLine(run), line('dmz-relay'));
    const keeping = await runPki(['--state', dir, 'relay-cert']);
    assert.equal(keeping.code, 1, keeping.stderr);
    assert.equal(firstLine(keeping), line('dmz-pki'));
    const mend = await runPki(['--state', dir, 'relay-cert', '--dns', 'localhost']);
    assert.equal(mend.code, 0, mend.stderr);
  });
});

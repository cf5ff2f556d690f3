import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { loadCredentials } from '../../agents/credentials.ts';
import { enrollAgent } from '../../agents/enroll.ts';
import { DmzError } from '../../relay/protocol/errors.ts';
import {
  createEnrollmentFixture,
  type EnrollmentFixture,
  type RunningEnrollmentListener,
} from '../support/enrollment-fixture.ts';
import { runOpenssl } from '../support/test-pki.ts';
import { spawnChild } from '../support/child-processes.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const AGENT_BIN = join(REPO, 'bin', 'dmz-agent.js');
const CREDENTIAL_FILES = ['key.pem', 'cert.pem', 'ca.pem', 'identity.json'];

let fixture: EnrollmentFixture;
/** Another relay: its own CA, token key and server certificate (also for 127.0.0.1). */
let other: EnrollmentFixture;
let listener: RunningEnrollmentListener;
let scratch: string;
let dirCount = 0;

before(async () => {
  [fixture, other] = await Promise.all([createEnrollmentFixture(), createEnrollmentFixture()]);
  listener = await fixture.listen();
  scratch = await mkdtemp(join(tmpdir(), 'dmz-agent-test-'));
});
after(async () => {
  await Promise.all([fixture.close(), other.close(), rm(scratch, { recursive: true, force: true })]);
});

/** A credential directory path that does not exist yet. */
function freshDir(): string {
  dirCount += 1;
  return join(scratch, `agent-${dirCount}`, 'credentials');
}

async function writeTokenFile(token: string): Promise<string> {
  dirCount += 1;
  const path = join(scratch, `token-${dirCount}`);
  await writeFile(path, `${token}\n`, { mode: 0o600 });
  return path;
}

interface AgentRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the real `bin/dmz-agent.js`, as an operator would. */
function runAgent(args: readonly string[], stdin = ''): Promise<AgentRun> {
  return new Promise((resolve, reject) => {
    const child = spawnChild(process.execPath, [AGENT_BIN, ...args], { cwd: REPO });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

const modeOf = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;

/** What the relay's audit log holds about enrollments from now on. */
function enrollmentEventsSince(audit: RunningEnrollmentListener['audit'], since: number): unknown[] {
  return audit.entries.slice(since).filter((entry) => entry.event.startsWith('enrollment.'));
}

async function codeOf(attempt: Promise<unknown>): Promise<string> {
  try {
    await attempt;
    return 'none';
  } catch (error) {
    return error instanceof DmzError ? error.code : String(error);
  }
}

describe('dmz-agent enroll', () => {
  it('enrolls with --token-file: key 0600 in a 0700 directory, a certificate of the CA for that key', async () => {
    const { token, jti } = await fixture.createToken({ name: 'press-7', role: 'ot', urls: [listener.url] });
    const dir = freshDir();
    const run = await runAgent([
      'enroll',
      '--token-file',
      await writeTokenFile(token),
      '--dir',
      dir,
      '--json',
    ]);
    assert.equal(run.code, 0, run.stderr);
    const printed = JSON.parse(run.stdout) as Record<string, string>;
    assert.equal(printed.spiffeId, 'spiffe://test.dmz/agent/ot/press-7');
    assert.equal(printed.dir, dir);

    assert.equal(await modeOf(dir), 0o700);
    for (const file of CREDENTIAL_FILES) assert.equal(await modeOf(join(dir, file)), 0o600, file);
    const [keyPem, certPem, caPem, identityJson] = await Promise.all(
      CREDENTIAL_FILES.map((file) => readFile(join(dir, file), 'utf8')),
    );
    const certificate = new X509Certificate(certPem!);
    assert.ok(certificate.checkPrivateKey(createPrivateKey(keyPem!)));
    assert.equal(caPem, fixture.tls.caPem);
    const verified = await runOpenssl(['verify', '-CAfile', 'ca.pem', 'cert.pem'], {
      'ca.pem': caPem,
      'cert.pem': certPem!,
    });
    assert.equal(verified.exitCode, 0, verified.stderr);
    const identity = JSON.parse(identityJson!) as Record<string, string>;
    assert.deepEqual(identity, {
      name: 'press-7',
      role: 'ot',
      trustDomain: 'test.dmz',
      spiffeId: 'spiffe://test.dmz/agent/ot/press-7',
      serial: certificate.serialNumber.toLowerCase(),
      notAfter: new Date(certificate.validTo).toISOString(),
    });
    assert.deepEqual((await loadCredentials(dir)).identity, identity);

    // The relay's side: the token is spent, and the audit log names this certificate.
    assert.equal(fixture.tokenStatus(jti), 'used');
    const succeeded = await listener.audit.waitFor(
      (entry) => entry.event === 'enrollment.succeeded' && entry.serial === identity.serial,
      'enrollment.succeeded',
    );
    assert.equal(succeeded.name, 'press-7');
  });

  it('reads the token from standard input with --token -', async () => {
    const { token, jti } = await fixture.createToken({ name: 'hmi-2', role: 'it', urls: [listener.url] });
    const dir = freshDir();
    const run = await runAgent(['enroll', '--token', '-', '--dir', dir], `${token}\n`);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /enrolled spiffe:\/\/test\.dmz\/agent\/it\/hmi-2/);
    assert.equal((await loadCredentials(dir)).identity.role, 'it');
    assert.equal(fixture.tokenStatus(jti), 'used');
  });

  it('refuses to re-enroll an enrolled directory without --force, leaving it and the token untouched', async () => {
    const first = await fixture.createToken({ name: 'line-3', urls: [listener.url] });
    const dir = freshDir();
    await enrollAgent({ token: first.token, dir });
    const before = await loadCredentials(dir);

    const second = await fixture.createToken({ name: 'line-3', urls: [listener.url] });
    const tokenFile = await writeTokenFile(second.token);
    const refused = await runAgent(['enroll', '--token-file', tokenFile, '--dir', dir]);
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      /^dmz-agent: .* already holds .*\(PKI_ERR_ALREADY_ENROLLED\); use --force .*\n$/,
    );
    assert.equal(fixture.tokenStatus(second.jti), 'active');
    assert.deepEqual(await loadCredentials(dir), before);

    const forced = await runAgent(['enroll', '--token-file', tokenFile, '--dir', dir, '--force', '--json']);
    assert.equal(forced.code, 0, forced.stderr);
    const after = await loadCredentials(dir);
    assert.notEqual(after.identity.serial, before.identity.serial);
    assert.notEqual(after.keyPem, before.keyPem);
    assert.equal(fixture.tokenStatus(second.jti), 'used');
  });

  it('tries the token URLs in order: an unreachable one is passed over', async () => {
    const closedPort = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address() as { port: number };
        server.close(() => resolve(port));
      });
    });
    const { token } = await fixture.createToken({
      name: 'fallback',
      urls: [`https://127.0.0.1:${closedPort}`, listener.url],
    });
    const outcome = await enrollAgent({ token, dir: freshDir() });
    assert.equal(outcome.url, listener.url);
    assert.equal(outcome.identity.name, 'fallback');
  });
});

describe('dmz-agent enroll - CA pinning', () => {
  it('refuses a relay that does not hold the pinned CA: the token is never sent', async () => {
    // Signed by this relay, so genuine in every way but the pin.
    const { token, jti } = await fixture.createToken({
      name: 'pinned-elsewhere',
      urls: [listener.url],
      caFingerprint: other.state.caFingerprint,
    });
    const since = listener.audit.entries.length;
    const dir = freshDir();
    const run = await runAgent(['enroll', '--token-file', await writeTokenFile(token), '--dir', dir]);
    assert.equal(run.code, 1);
    assert.match(
      run.stderr,
      /^dmz-agent: enrollment endpoint does not present the pinned CA .*\(PKI_ERR_CA_MISMATCH\); .*\n$/,
    );
    assert.equal(fixture.tokenStatus(jti), 'active');
    assert.deepEqual(enrollmentEventsSince(listener.audit, since), []);
    await assert.rejects(stat(join(dir, 'identity.json')), { code: 'ENOENT' });
  });

  it("refuses a listener presenting another CA's certificate for the same address", async () => {
    const impostor = await other.listen();
    const { token, jti } = await fixture.createToken({ name: 'misdirected', urls: [impostor.url] });
    assert.equal(await codeOf(enrollAgent({ token, dir: freshDir() })), 'PKI_ERR_CA_MISMATCH');
    assert.deepEqual(enrollmentEventsSince(impostor.audit, 0), []);
    assert.equal(fixture.tokenStatus(jti), 'active');
    await impostor.listener.close();
  });
});

describe('dmz-agent command line', () => {
  const USAGE_ERRORS: readonly { name: string; args: string[]; stderr: RegExp }[] = [
    { name: 'no command', args: [], stderr: /a command is required/ },
    { name: 'an unknown command', args: ['start'], stderr: /unknown command "start"/ },
    { name: 'run without --config', args: ['run'], stderr: /--config FILE is required/ },
    { name: 'status without --config', args: ['status', '--json'], stderr: /--config FILE is required/ },
    { name: 'enroll without --dir', args: ['enroll', '--token', 'x'], stderr: /--dir is required/ },
    { name: 'enroll without a token', args: ['enroll', '--dir', 'd'], stderr: /a token is required/ },
    {
      name: 'both --token and --token-file',
      args: ['enroll', '--token', 'x', '--token-file', 'f', '--dir', 'd'],
      stderr: /not both/,
    },
    { name: 'an unknown option', args: ['enroll', '--tokne', 'x'], stderr: /unknown option --tokne/ },
  ];
  for (const usage of USAGE_ERRORS) {
    it(`exits 2 with one line pointing to the help on ${usage.name}`, async () => {
      const run = await runAgent(usage.args);
      assert.equal(run.code, 2);
      assert.match(run.stderr, usage.stderr);
      assert.match(
        run.stderr,
        /^dmz-agent: .* \(CLI_ERR_USAGE\); see 'dmz-agent ((enroll|run|status) )?--help'\n$/,
      );
    });
  }

  it('prints help with exit 0, and lists only the commands that exist', async () => {
    const top = await runAgent(['--help']);
    assert.equal(top.code, 0);
    for (const command of ['enroll', 'run', 'status', 'write', 'writes'])
      assert.match(top.stdout, new RegExp(`^ {2}${command} `, 'm'));
    const enroll = await runAgent(['enroll', '--help']);
    assert.equal(enroll.code, 0);
    assert.match(enroll.stdout, /--token-file FILE/);
  });

  it('exits 1 with the reason on a token that is not one', async () => {
    const run = await runAgent(['enroll', '--token', 'not-a-token', '--dir', freshDir()]);
    assert.equal(run.code, 1);
    assert.equal(
      run.stderr,
      'dmz-agent: enrollment token is invalid (PKI_ERR_TOKEN_INVALID); pass the whole token exactly as dmz-pki token create printed it\n',
    );
  });
});

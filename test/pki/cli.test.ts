/**
 * `dmz-pki` as operators and scripts run it: a real process per command (bin/dmz-pki.js), checked
 * by exit status, stdout and stderr, and the CRL it writes checked with OpenSSL. Init makes a
 * 3072-bit CA key, so one initialized state directory serves most cases and a second one the
 * passphrase cases. Enrollment (the relay's side) is simulated in-process with CertificateIssuer.
 * The tables of refusals run runPkiCli in this process (each spawn costs ~0.5 s of tsx start-up);
 * a few of each kind also run as processes, so the exit status is seen as a shell sees it.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  closeSync,
  cpSync,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createCertificateSigningRequest } from '../../pki/csr.ts';
import { spkiFingerprint } from '../../pki/fingerprint.ts';
import { CertificateIssuer } from '../../pki/issuance.ts';
import { AGENT_KEY_BITS, generateRsaKeyPair, type RsaKeyPair } from '../../pki/keys.ts';
import { runPkiCli } from '../../pki/cli.ts';
import { openState } from '../../pki/state.ts';
import { createCaState } from '../support/ca-state.ts';
import { spawnChild } from '../support/child-processes.ts';

const BIN = fileURLToPath(new URL('../../bin/dmz-pki.js', import.meta.url));
const OPENSSL = '/usr/bin/openssl';
const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const PASSPHRASE = 'correct horse battery staple';
const posixModes = process.platform !== 'win32';
/** The user `nobody`: an operator who does not own the state directory. */
const NOBODY = { uid: 65534, gid: 65534 } as const;

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stdoutBytes: Buffer;
  readonly stderr: string;
}

/** Runs dmz-pki with a clean environment: no state directory or passphrase leaks in from the shell. */
function runPki(
  args: readonly string[],
  env: Record<string, string> = {},
  user?: { readonly uid: number; readonly gid: number },
): Promise<Run> {
  const baseEnv = { ...process.env };
  delete baseEnv.DMZ_STATE_DIR;
  delete baseEnv.DMZ_PKI_PASSPHRASE;
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { ...baseEnv, ...env }, encoding: 'buffer', ...user },
      (error, stdout, stderr) => {
        if (error !== null && typeof error.code !== 'number')
          reject(new Error('did not run', { cause: error }));
        else {
          const code = error === null ? 0 : Number(error.code);
          resolve({ code, stdout: stdout.toString(), stdoutBytes: stdout, stderr: stderr.toString() });
        }
      },
    );
  });
}

/** dmz-pki as a process whose standard output is the file `path` (`> /dev/full`). */
function runPkiToFile(args: readonly string[], path: string): Promise<{ code: number; stderr: string }> {
  const baseEnv = { ...process.env };
  delete baseEnv.DMZ_STATE_DIR;
  delete baseEnv.DMZ_PKI_PASSPHRASE;
  const fd = openSync(path, 'w');
  return new Promise((resolve, reject) => {
    const child = spawnChild(process.execPath, [BIN, ...args], {
      env: baseEnv,
      stdio: ['ignore', fd, 'pipe'],
    });
    closeSync(fd);
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stderr }));
  });
}

/** The same command line through runPkiCli in this process, output captured. */
async function runInProcess(args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  const stdout: Buffer[] = [];
  let stderr = '';
  const code = await runPkiCli(args, env, {
    stdout: (data) => void stdout.push(Buffer.from(data)),
    stderr: (text) => void (stderr += text),
  });
  const stdoutBytes = Buffer.concat(stdout);
  return { code, stdout: stdoutBytes.toString(), stdoutBytes, stderr };
}

function runOpenssl(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(OPENSSL, args, { encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error !== null && typeof error.code !== 'number')
        reject(new Error('did not run', { cause: error }));
      else resolve({ code: error === null ? 0 : Number(error.code), stdout, stderr });
    });
  });
}

function assertExit(run: Run, code: number): void {
  assert.equal(run.code, code, `exit ${run.code}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
}

function parseJson(run: Run): unknown {
  assertExit(run, 0);
  return JSON.parse(run.stdout);
}

/** Serials as OpenSSL prints them in a CRL listing: upper case, zero-padded to whole octets. */
function crlListsSerial(opensslText: string, serialHex: string): boolean {
  return new RegExp(`Serial Number: 0*${serialHex}\\b`, 'i').test(opensslText);
}

/** The relay's side of enrollment, in-process: redeem a CLI-made token with a CSR. */
async function enroll(
  stateDir: string,
  token: string,
  keys: RsaKeyPair,
  passphrase?: string,
): Promise<string> {
  const state = await openState(stateDir);
  try {
    const ca = await state.loadCa(passphrase);
    const csr = createCertificateSigningRequest({ ...keys, commonName: 'agent' });
    const issued = await new CertificateIssuer(state, ca).enroll(token, csr);
    return issued.serialHex;
  } finally {
    state.close();
  }
}

interface TokenJson {
  token: string;
  jti: string;
  name: string;
  role: string;
  expiresAt: string;
}
interface TokenListEntry {
  jti: string;
  name: string;
  status: string;
}
interface AgentJson {
  name: string;
  role: string;
  serial: string;
  status: string;
  revocationReason: string | null;
}

let root: string;
let agentKeys: RsaKeyPair;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'dmz-pki-cli-'));
  agentKeys = await generateRsaKeyPair(AGENT_KEY_BITS);
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

// The three groups use separate state and run side by side: most of the time is process start-up.
describe('dmz-pki', { concurrency: true }, () => {
  describe('dmz-pki - command line', { concurrency: true }, () => {
    it('cli - a process: --help exits 0 with usage on stdout', async () => {
      for (const words of [[], ['token', 'create']]) {
        const run = await runPki([...words, '--help']);
        assertExit(run, 0);
        assert.match(run.stdout, new RegExp(`^Usage: dmz-pki --state DIR ${words.join(' ')}`));
        assert.equal(run.stderr, '');
      }
    });

    it('cli - a process: an unknown command exits 2, a missing --state exits 2, both with a message', async () => {
      const unknown = await runPki(['frobnicate']);
      assertExit(unknown, 2);
      assert.equal(
        unknown.stderr,
        `dmz-pki: unknown command "frobnicate" (CLI_ERR_USAGE); see 'dmz-pki --help' for the commands\n`,
      );
      const noState = await runPki(['status']);
      assertExit(noState, 2);
      assert.match(
        noState.stderr,
        /^dmz-pki: --state DIR is required \(or set DMZ_STATE_DIR\) \(CLI_ERR_USAGE\)/,
      );
    });

    const helpCases = [
      [],
      ['init'],
      ['token'],
      ['token', 'create'],
      ['token', 'list'],
      ['token', 'revoke'],
      ['agents'],
      ['revoke'],
      ['crl'],
      ['status'],
    ];
    for (const words of helpCases) {
      it(`cli - ${['dmz-pki', ...words].join(' ')} --help prints its usage on stdout and exits 0`, async () => {
        const run = await runInProcess([...words, '--help']);
        assertExit(run, 0);
        assert.match(run.stdout, new RegExp(`^Usage: dmz-pki --state DIR ${words.join(' ')}`));
        assert.match(run.stdout, /--json/);
        assert.equal(run.stderr, '');
      });
    }

    const neverCreated = () => join(root, 'never-created');
    const usageCases: [label: string, args: () => string[], stderr: RegExp][] = [
      ['no command', () => [], /no command given/],
      ['an unknown command', () => ['--state', neverCreated(), 'frobnicate'], /unknown command "frobnicate"/],
      ['a group without its command', () => ['token'], /token needs a command: create, list, revoke/],
      ['an unknown command in a group', () => ['token', 'mint'], /unknown command "token mint"/],
      [
        'an unknown option',
        () => ['--state', neverCreated(), 'token', 'list', '--bogus'],
        /unknown option --bogus/,
      ],
      ['a missing --state', () => ['agents'], /--state DIR is required \(or set DMZ_STATE_DIR\)/],
      ['an empty --state', () => ['--state', '', 'agents'], /--state DIR is required/],
      [
        'a missing --name',
        () => ['--state', neverCreated(), 'token', 'create', '--role', 'ot'],
        /--name is required/,
      ],
      ['a missing operand', () => ['--state', neverCreated(), 'token', 'revoke'], /missing JTI/],
      [
        'an extra operand',
        () => ['--state', neverCreated(), 'agents', 'press-7'],
        /unexpected argument "press-7"/,
      ],
      [
        'a passphrase as an argument',
        () => ['--state', neverCreated(), 'crl', '--passphrase', 'x'],
        /unknown option --passphrase/,
      ],
      [
        'init without --dns or --ip',
        () => ['--state', neverCreated(), 'init', '--trust-domain', 'plant.example'],
        /at least one --dns NAME or --ip ADDR/,
      ],
      [
        '--der with --json',
        () => ['--state', neverCreated(), 'crl', '--der', '--json'],
        /cannot be combined/,
      ],
    ];
    for (const [label, args, stderr] of usageCases) {
      it(`cli - ${label} exits 2 with one line that points to the help`, async () => {
        const run = await runInProcess(args());
        assertExit(run, 2);
        assert.match(run.stderr, /^dmz-pki: /);
        assert.match(run.stderr, stderr);
        assert.match(run.stderr, / \(CLI_ERR_USAGE\); see 'dmz-pki [a-z ]*--help'( for the commands)?\n$/);
        assert.equal(run.stdout, '');
        assert.equal(existsSync(neverCreated()), false);
      });
    }
  });

  describe('dmz-pki - one CA', { concurrency: false }, () => {
    let stateDir: string;
    let init: Run;
    before(async () => {
      stateDir = join(root, 'state');
      init = await runPki([
        '--state',
        stateDir,
        'init',
        '--trust-domain',
        'plant.example',
        '--dns',
        'localhost',
        '--ip',
        '127.0.0.1',
      ]);
    });
    /** A process for the command under test; the same in this process for follow-up reads. */
    const pki = (...args: string[]) => runPki(['--state', stateDir, ...args]);
    const pkiHere = (...args: string[]) => runInProcess(['--state', stateDir, ...args]);

    it('init - prints the CA fingerprint; directory 0700, every file 0600', async () => {
      assertExit(init, 0);
      const caPem = await readFile(join(stateDir, 'ca.pem'), 'utf8');
      assert.equal(init.stdout, `${spkiFingerprint(caPem)}\n`);
      if (!posixModes) return;
      assert.equal((await stat(stateDir)).mode & 0o777, 0o700);
      const files = await readdir(stateDir);
      assert.ok(files.includes('ca-key.pem') && files.includes('crl.pem'), files.join(' '));
      for (const file of files) {
        assert.equal((await stat(join(stateDir, file))).mode & 0o777, 0o600, file);
      }
    });

    it('init - a second init is refused and leaves the CA alone', async () => {
      const keyBefore = await readFile(join(stateDir, 'ca-key.pem'), 'utf8');
      const run = await pki('init', '--trust-domain', 'other.example', '--dns', 'localhost');
      assertExit(run, 1);
      assert.equal(
        run.stderr,
        `dmz-pki: ${JSON.stringify(stateDir)} already holds a certificate authority (PKI_ERR_ALREADY_INITIALIZED); it is left as it is; choose another directory for a new CA\n`,
      );
      assert.equal(await readFile(join(stateDir, 'ca-key.pem'), 'utf8'), keyBefore);
    });

    describe('init - invalid values are refused before anything is created', { concurrency: true }, () => {
      const cases: [label: string, args: string[], stderr: RegExp][] = [
        [
          'an upper-case trust domain',
          ['--trust-domain', 'Plant.Example', '--dns', 'relay'],
          /--trust-domain/,
        ],
        ['a DNS name with "_"', ['--trust-domain', 'plant.example', '--dns', 'relay_1'], /--dns .*"relay_1"/],
        [
          'an IP out of range',
          ['--trust-domain', 'plant.example', '--ip', '300.1.1.1'],
          /--ip .*"300.1.1.1"/,
        ],
        [
          'a plain-http enroll URL',
          ['--trust-domain', 'plant.example', '--dns', 'relay', '--enroll-url', 'http://relay:8444'],
          /--enroll-url must be an https:\/\/ or wss:\/\/ URL/,
        ],
      ];
      for (const [label, args, stderr] of cases) {
        it(`init - refuses ${label} as a bad command line (exit 2)`, async () => {
          const fresh = join(root, `init-refused-${label.replace(/\W+/g, '-')}`);
          const run = await runInProcess(['--state', fresh, 'init', ...args]);
          assertExit(run, 2);
          assert.match(run.stderr, / \(CLI_ERR_INVALID_ARGUMENT\); see 'dmz-pki init --help'\n$/);
          assert.match(run.stderr, stderr);
          assert.equal(existsSync(fresh), false);
        });
      }
    });

    it('token create - prints only a JWT; token list shows it active by jti, never the token', async () => {
      const run = await pki('token', 'create', '--name', 'press-7', '--role', 'ot');
      assertExit(run, 0);
      const lines = run.stdout.split('\n');
      assert.equal(lines.length, 2, run.stdout);
      assert.equal(lines[1], '');
      const token = lines[0]!;
      assert.match(token, JWT);
      const payload = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<
        string,
        unknown
      >;
      assert.equal(payload.sub, 'press-7');
      assert.deepEqual(payload.urls, ['https://localhost:8444']);
      assert.equal(payload.ca, init.stdout.trim());

      const listed = parseJson(await pkiHere('token', 'list', '--json')) as TokenListEntry[];
      assert.deepEqual(
        listed.filter((t) => t.jti === payload.jti).map((t) => [t.name, t.status]),
        [['press-7', 'active']],
      );
      const table = await pki('token', 'list');
      assert.match(table.stdout, /^JTI\s+NAME\s+ROLE\s+EXPIRES\s+STATUS\n/);
      assert.match(table.stdout, new RegExp(`${String(payload.jti)}\\s+press-7\\s+ot\\s+\\S+Z\\s+active`));
      assert.ok(!table.stdout.includes(token) && !JSON.stringify(listed).includes(token));
    });

    describe('output - a standard output that cannot be written exits 1', { concurrency: false }, () => {
      const rows = [
        {
          name: 'token create > /dev/full records no token',
          args: ['token', 'create', '--name', 'lost-1', '--role', 'ot'],
          line: 'dmz-pki: cannot write to standard output: no space left on the device: the token was not recorded and cannot enroll (CLI_ERR_FILE); run token create again with standard output going somewhere that takes it',
        },
        {
          name: 'crl > /dev/full',
          args: ['crl'],
          line: 'dmz-pki: cannot write to standard output: no space left on the device (CLI_ERR_FILE); check where standard output goes (a full disk, a closed pipe) and run the command again',
        },
      ];
      for (const row of rows) {
        it(`output - ${row.name}`, { skip: !existsSync('/dev/full') }, async () => {
          const tokensBefore = await pkiHere('token', 'list', '--all', '--json');
          const run = await runPkiToFile(['--state', stateDir, ...row.args], '/dev/full');
          assert.equal(run.code, 1, run.stderr);
          assert.equal(run.stderr.split('\n')[0], row.line);
          const tokensAfter = await pkiHere('token', 'list', '--all', '--json');
          assert.equal(tokensAfter.stdout, tokensBefore.stdout, 'no token recorded');
        });
      }
    });

    it('token create --json - the token, its jti and its expiry (--ttl)', async () => {
      const started = Date.now();
      const created = parseJson(
        await pki('token', 'create', '--name', 'hmi-1', '--role', 'it', '--ttl', '2h', '--json'),
      ) as TokenJson;
      assert.match(created.token, JWT);
      assert.deepEqual([created.name, created.role], ['hmi-1', 'it']);
      const finished = Date.now();
      // exp is iat + ttl, both whole seconds: iat is somewhere in the run, floored.
      const issuedAt = Date.parse(created.expiresAt) - 2 * 3600_000;
      assert.ok(issuedAt > started - 1000 && issuedAt <= finished, `iat ${issuedAt} not in the run`);
    });

    describe('token create - invalid values exit 2 naming the problem', { concurrency: true }, () => {
      const cases: [label: string, args: string[], stderr: RegExp][] = [
        ['role plc', ['--name', 'press-7', '--role', 'plc'], /--role must be ot or it: "plc"/],
        ['role OT', ['--name', 'press-7', '--role', 'OT'], /--role must be ot or it: "OT"/],
        [
          'an upper-case name',
          ['--name', 'Press-7', '--role', 'ot'],
          /--name must be a lower-case DNS label.*"Press-7"/,
        ],
        ['a name with "/"', ['--name', 'press/7', '--role', 'ot'], /--name must be a lower-case DNS label/],
        ['a 64-character name', ['--name', 'a'.repeat(64), '--role', 'ot'], /at most 63 characters/],
        [
          'a ttl without unit',
          ['--name', 'p', '--role', 'ot', '--ttl', '3600'],
          /--ttl must be a whole number and one unit/,
        ],
        [
          'a fractional ttl',
          ['--name', 'p', '--role', 'ot', '--ttl', '1.5h'],
          /--ttl must be a whole number/,
        ],
        [
          'a ttl under a minute',
          ['--name', 'p', '--role', 'ot', '--ttl', '30s'],
          /--ttl must be from 1m to 7d: "30s"/,
        ],
        [
          'a ttl over a week',
          ['--name', 'p', '--role', 'ot', '--ttl', '8d'],
          /--ttl must be from 1m to 7d: "8d"/,
        ],
        [
          'a non-TLS url',
          ['--name', 'p', '--role', 'ot', '--url', 'ws://relay:8444'],
          /--url must be an https:\/\/ or wss:\/\//,
        ],
      ];
      for (const [label, args, stderr] of cases) {
        it(`token create - refuses ${label}`, async () => {
          const run = await runInProcess(['--state', stateDir, 'token', 'create', ...args]);
          assertExit(run, 2);
          assert.match(run.stderr, /^dmz-pki: /);
          assert.match(run.stderr, stderr);
          assert.equal(run.stdout, '');
          assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
        });
      }
    });

    it('token revoke - the token leaves the active list and shows revoked with --all', async () => {
      const { jti } = parseJson(
        await pkiHere('token', 'create', '--name', 'spare', '--role', 'ot', '--json'),
      ) as TokenJson;
      const run = await pki('token', 'revoke', jti);
      assertExit(run, 0);
      assert.equal(run.stdout, `revoked token ${jti}\n`);
      const active = parseJson(await pkiHere('token', 'list', '--json')) as TokenListEntry[];
      assert.ok(!active.some((t) => t.jti === jti));
      const all = parseJson(await pkiHere('token', 'list', '--all', '--json')) as TokenListEntry[];
      assert.equal(all.find((t) => t.jti === jti)?.status, 'revoked');

      const unknown = await pkiHere('token', 'revoke', 'AAAAAAAAAAAAAAAAAAAAAA');
      assertExit(unknown, 1);
      assert.equal(
        unknown.stderr,
        `dmz-pki: no token with jti "AAAAAAAAAAAAAAAAAAAAAA" (PKI_ERR_NOT_FOUND); 'dmz-pki token list --all' lists every token's jti\n`,
      );
    });

    it('token revoke - a jti that starts with "-" is taken as the JTI, not as options', async () => {
      const jti = '-h' + 'x'.repeat(20);
      const state = await openState(stateDir);
      try {
        const now = new Date();
        state.store.recordToken({
          jti,
          name: 'dash',
          role: 'it',
          createdAt: now,
          expiresAt: new Date(now.getTime() + 60_000),
        });
      } finally {
        state.close();
      }
      const run = await runInProcess(['--state', stateDir, 'token', 'revoke', jti]);
      assertExit(run, 0);
      assert.equal(run.stdout, `revoked token ${jti}\n`);
    });

    it('token create - refuses a name already enrolled or invited under the other role', async () => {
      const first = await pki('token', 'create', '--name', 'plc-13', '--role', 'ot');
      assertExit(first, 0);
      const clash = await pkiHere('token', 'create', '--name', 'plc-13', '--role', 'it');
      assertExit(clash, 1);
      assert.match(clash.stderr, /already enrolled or invited as role ot/);
      assertExit(await pki('token', 'create', '--name', 'plc-13', '--role', 'ot'), 0);
    });

    it("revoke NAME - also revokes the agent's outstanding tokens, so it cannot enroll again", async () => {
      const first = await pki('token', 'create', '--name', 'plc-11', '--role', 'ot');
      await enroll(stateDir, first.stdout.trim(), agentKeys);
      const spare = await pki('token', 'create', '--name', 'plc-11', '--role', 'ot', '--json');
      const { jti } = parseJson(spare) as { jti: string };
      const revoked = await pki('revoke', 'plc-11', '--json');
      assertExit(revoked, 0);
      assert.equal((parseJson(revoked) as { tokensRevoked: number }).tokensRevoked, 1);
      const tokens = parseJson(await pkiHere('token', 'list', '--all', '--json')) as TokenListEntry[];
      assert.equal(tokens.find((t) => t.jti === jti)?.status, 'revoked');
    });

    it('revoke NAME - an agent that never enrolled has its tokens revoked; an unknown name is an error', async () => {
      await pki('token', 'create', '--name', 'plc-12', '--role', 'ot');
      const revoked = await pki('revoke', 'plc-12');
      assertExit(revoked, 0);
      assert.match(revoked.stdout, /revoked 1 outstanding enrollment token/);
      assertExit(await pkiHere('revoke', 'plc-never'), 1);
    });

    it('agents, revoke, crl - an enrolled agent is listed, revoked, and its serial is on the CRL', async () => {
      // DMZ_STATE_DIR in place of --state, as a service environment would set it.
      const created = await runPki(['token', 'create', '--name', 'plc-9', '--role', 'ot'], {
        DMZ_STATE_DIR: stateDir,
      });
      assertExit(created, 0);
      const serial = await enroll(stateDir, created.stdout.trim(), agentKeys);

      const enrolled = (parseJson(await pki('agents', '--json')) as AgentJson[]).filter(
        (a) => a.name === 'plc-9',
      );
      assert.deepEqual(
        enrolled.map((a) => [a.role, a.serial, a.status]),
        [['ot', serial, 'valid']],
      );
      const used = parseJson(await pkiHere('token', 'list', '--all', '--json')) as TokenListEntry[];
      assert.equal(used.find((t) => t.name === 'plc-9')?.status, 'used');
      const revokeUsed = await pkiHere('token', 'revoke', used.find((t) => t.name === 'plc-9')!.jti);
      assertExit(revokeUsed, 1);
      assert.match(
        revokeUsed.stderr,
        /already been used \(PKI_ERR_TOKEN_USED\); revoke the agent's certificate/,
      );

      const revoked = await pki('revoke', 'plc-9', '--reason', 'key lost');
      assertExit(revoked, 0);
      assert.equal(revoked.stdout, `revoked ${serial} (plc-9, ot)\n`);
      assert.equal(revoked.stderr, '');
      const afterRevoke = (parseJson(await pkiHere('agents', '--json')) as AgentJson[]).find(
        (a) => a.serial === serial,
      );
      assert.deepEqual([afterRevoke?.status, afterRevoke?.revocationReason], ['revoked', 'key lost']);
      const table = await pkiHere('agents');
      assert.match(table.stdout, new RegExp(`plc-9\\s+ot\\s+${serial}\\s+\\S+Z\\s+revoked\\s+-`));

      // Written by `revoke` itself: no relay is running here.
      const onDisk = await runOpenssl(['crl', '-in', join(stateDir, 'crl.pem'), '-noout', '-text']);
      assert.equal(onDisk.code, 0, onDisk.stderr);
      assert.ok(crlListsSerial(onDisk.stdout, serial), onDisk.stdout);

      const der = await pki('crl', '--der');
      assertExit(der, 0);
      const derFile = join(root, 'exported.crl');
      await writeFile(derFile, der.stdoutBytes);
      const parsed = await runOpenssl(['crl', '-inform', 'DER', '-in', derFile, '-noout', '-text']);
      assert.equal(parsed.code, 0, parsed.stderr);
      assert.ok(crlListsSerial(parsed.stdout, serial), parsed.stdout);

      const pemFile = join(root, 'exported.pem');
      assertExit(await pkiHere('crl', '--out', pemFile), 0);
      assert.equal(await readFile(pemFile, 'utf8'), await readFile(join(stateDir, 'crl.pem'), 'utf8'));

      const again = await pkiHere('revoke', 'plc-9');
      assertExit(again, 0);
      assert.equal(again.stdout, '');
      assert.match(again.stderr, /already revoked, nothing changed/);
    });

    it('revoke - an unknown name or serial exits 1 and says so', async () => {
      const run = await pki('revoke', 'no-such-agent');
      assertExit(run, 1);
      assert.equal(
        run.stderr,
        `dmz-pki: no certificate issued to an agent or with a serial "no-such-agent" (PKI_ERR_NOT_FOUND); 'dmz-pki agents' lists every agent and serial\n`,
      );
    });

    it('status --json - identity, expiry dates, counts and the CRL', async () => {
      const status = parseJson(await pki('status', '--json')) as {
        trustDomain: string;
        caFingerprint: string;
        caNotAfter: string;
        relayCertificateNotAfter: string;
        activeTokens: number;
        crl: { nextUpdate: string; needsReissue: boolean; unpublishedSerials: number };
      };
      assert.equal(status.trustDomain, 'plant.example');
      assert.equal(status.caFingerprint, init.stdout.trim());
      assert.ok(Date.parse(status.caNotAfter) > Date.parse(status.relayCertificateNotAfter));
      assert.ok(Date.parse(status.crl.nextUpdate) > Date.now());
      assert.equal(status.crl.needsReissue, false);
      const tokens = parseJson(await pkiHere('token', 'list', '--json')) as TokenListEntry[];
      assert.equal(status.activeTokens, tokens.length);
      const human = await pkiHere('status');
      assert.match(human.stdout, /^state directory\s+\S+\ntrust domain\s+plant\.example\n/);
    });
  });

  describe('dmz-pki - a passphrase-protected CA', { concurrency: false }, () => {
    let stateDir: string;
    let passphraseFile: string;
    let wrongFile: string;
    before(async () => {
      stateDir = join(root, 'locked');
      passphraseFile = join(root, 'passphrase');
      wrongFile = join(root, 'wrong-passphrase');
      await writeFile(passphraseFile, `${PASSPHRASE}\n`, { mode: 0o600 });
      await writeFile(wrongFile, 'not it\n', { mode: 0o600 });
    });
    /** A process for the command under test; the same in this process for follow-up reads. */
    const pki = (...args: string[]) => runPki(['--state', stateDir, ...args]);
    const pkiHere = (...args: string[]) => runInProcess(['--state', stateDir, ...args]);

    it('init --json --passphrase-file - keys are encrypted at rest', async () => {
      const initJson = parseJson(
        await pki(
          'init',
          '--json',
          '--trust-domain',
          'locked.example',
          '--ip',
          '127.0.0.1',
          '--passphrase-file',
          passphraseFile,
        ),
      ) as { caFingerprint: string; stateDir: string; trustDomain: string };
      assert.deepEqual(Object.keys(initJson).sort(), ['caFingerprint', 'stateDir', 'trustDomain']);
      assert.equal(initJson.stateDir, stateDir);
      assert.equal(initJson.trustDomain, 'locked.example');
      assert.equal(initJson.caFingerprint, spkiFingerprint(await readFile(join(stateDir, 'ca.pem'), 'utf8')));
      for (const key of ['ca-key.pem', 'token-signing-key.pem']) {
        assert.match(await readFile(join(stateDir, key), 'utf8'), /BEGIN ENCRYPTED PRIVATE KEY/, key);
      }
    });

    it('token create - needs the passphrase: none and a wrong one fail clearly, file or env works', async () => {
      const args = ['token', 'create', '--name', 'press-1', '--role', 'ot'];
      const without = await pki(...args);
      assertExit(without, 1);
      assert.equal(
        without.stderr,
        'dmz-pki: the token-signing key is encrypted and no passphrase was given (PKI_ERR_PASSPHRASE); give it with --passphrase-file FILE or DMZ_PKI_PASSPHRASE\n',
      );
      const wrong = await pkiHere(...args, '--passphrase-file', wrongFile);
      assertExit(wrong, 1);
      assert.equal(
        wrong.stderr,
        'dmz-pki: the passphrase does not decrypt the token-signing key (PKI_ERR_PASSPHRASE); check the passphrase given with --passphrase-file FILE or DMZ_PKI_PASSPHRASE\n',
      );
      const missingFile = await pkiHere(...args, '--passphrase-file', join(root, 'absent'));
      assertExit(missingFile, 1);
      assert.match(
        missingFile.stderr,
        /^dmz-pki: cannot read the passphrase file \(--passphrase-file\) ".*absent": it or a directory above it does not exist \(CLI_ERR_FILE\); check the path\n$/,
      );

      const withFile = await pki(...args, '--passphrase-file', passphraseFile);
      assertExit(withFile, 0);
      assert.match(withFile.stdout.trim(), JWT);
      const withEnv = await runInProcess(['--state', stateDir, ...args], { DMZ_PKI_PASSPHRASE: PASSPHRASE });
      assertExit(withEnv, 0);
      assert.match(withEnv.stdout.trim(), JWT);
    });

    it(
      'a passphrase file group or others may read, or not a regular file, is refused and nothing is made',
      { skip: !posixModes && 'POSIX modes only' },
      async () => {
        const open = join(root, 'passphrase-0640');
        await writeFile(open, `${PASSPHRASE}\n`, { mode: 0o600 });
        chmodSync(open, 0o640);
        /** One token for press-9, the CA key's passphrase read from `file`. */
        const createToken = (run: typeof pki, file: string) =>
          run('token', 'create', '--name', 'press-9', '--role', 'ot', '--passphrase-file', file);
        const tokensBefore = parseJson(await pkiHere('token', 'list', '--json'));
        const token = await createToken(pkiHere, open);
        assertExit(token, 1);
        assert.equal(
          token.stderr,
          `dmz-pki: ${JSON.stringify(open)} (--passphrase-file) is open to group or others (mode 0640) (PKI_ERR_PASSPHRASE); make it the owner's alone: chmod 600 ${JSON.stringify(open)}\n`,
        );
        assert.deepEqual(parseJson(await pkiHere('token', 'list', '--json')), tokensBefore, 'no token made');
        const out = join(root, 'refused.backup');
        const backup = await pkiHere('backup', '--out', out, '--backup-passphrase-file', open);
        assertExit(backup, 1);
        assert.match(
          backup.stderr,
          /^dmz-pki: ".*passphrase-0640" \(--backup-passphrase-file\) is open to group or others \(mode 0640\) \(PKI_ERR_BACKUP_PASSPHRASE\); make it the owner's alone: chmod 600 /,
        );
        assert.equal(existsSync(out), false, 'no backup written');
        const notAFile = await createToken(pkiHere, root);
        assertExit(notAFile, 1);
        assert.match(
          notAFile.stderr,
          /\(--passphrase-file\) is not a regular file or a pipe \(PKI_ERR_PASSPHRASE\)/,
        );
        // A pipe, as `--passphrase-file <(pass show ca)` gives, is no file at rest: accepted.
        const pipe = join(root, 'passphrase-pipe');
        assert.equal(spawnSync('mkfifo', ['-m', '600', pipe]).status, 0, 'mkfifo');
        const [piped] = await Promise.all([createToken(pki, pipe), writeFile(pipe, `${PASSPHRASE}\n`)]);
        assertExit(piped, 0);
      },
    );

    it('revoke - without the passphrase the store is updated and the relay is left to publish the CRL', async () => {
      const token = await pkiHere(
        'token',
        'create',
        '--name',
        'press-2',
        '--role',
        'ot',
        '--passphrase-file',
        passphraseFile,
      );
      const serial = await enroll(stateDir, token.stdout.trim(), agentKeys, PASSPHRASE);

      const revoked = await pki('revoke', serial);
      assertExit(revoked, 0);
      assert.equal(revoked.stdout, `revoked ${serial} (press-2, ot)\n`);
      assert.match(
        revoked.stderr,
        /does not list 1 revoked certificate\(s\) yet; the running relay publishes them/,
      );

      const stale = await pkiHere('crl');
      assertExit(stale, 0);
      assert.match(stale.stdout, /^-----BEGIN X509 CRL-----/);
      assert.match(stale.stderr, /give the passphrase .* to reissue it now/);
      const staleText = await runOpenssl(['crl', '-in', join(stateDir, 'crl.pem'), '-noout', '-text']);
      assert.ok(!crlListsSerial(staleText.stdout, serial));

      const reissued = await pki('crl', '--passphrase-file', passphraseFile);
      assertExit(reissued, 0);
      assert.equal(reissued.stderr, '');
      const text = await runOpenssl(['crl', '-in', join(stateDir, 'crl.pem'), '-noout', '-text']);
      assert.ok(crlListsSerial(text.stdout, serial), text.stdout);
      assert.equal((await pkiHere('crl')).stderr, '', 'current again: no warning');
    });

    it('revoke - a wrong passphrase fails before anything is revoked', async () => {
      const token = await pkiHere(
        'token',
        'create',
        '--name',
        'press-3',
        '--role',
        'ot',
        '--passphrase-file',
        passphraseFile,
      );
      const serial = await enroll(stateDir, token.stdout.trim(), agentKeys, PASSPHRASE);
      const run = await pki('revoke', 'press-3', '--passphrase-file', wrongFile);
      assertExit(run, 1);
      assert.equal(
        run.stderr,
        'dmz-pki: the passphrase does not decrypt the CA key (PKI_ERR_PASSPHRASE); check the passphrase given with --passphrase-file FILE or DMZ_PKI_PASSPHRASE\n',
      );
      const agents = parseJson(await pkiHere('agents', '--json')) as AgentJson[];
      assert.equal(agents.find((a) => a.serial === serial)?.status, 'valid');

      const withPassphrase = await pkiHere(
        'revoke',
        'press-3',
        '--json',
        '--passphrase-file',
        passphraseFile,
      );
      const result = parseJson(withPassphrase) as { revoked: AgentJson[]; crlWritten: boolean };
      assert.deepEqual(
        result.revoked.map((a) => a.serial),
        [serial],
      );
      assert.equal(result.crlWritten, true);
    });
  });
  describe('dmz-pki - a damaged or inaccessible state directory', { concurrency: false }, () => {
    /** A CA made once; each row works on a copy of it. */
    let pristine: string;
    before(async () => {
      pristine = join(root, 'pristine');
      await createCaState(pristine);
      // Another user may pass through the scratch directory (as through /var/lib) but not into the state.
      if (asOther !== undefined) chmodSync(root, 0o711);
    });
    /** Root reads any file: the row runs as nobody then, as an operator who is not the owner would. */
    const asOther = process.getuid?.() === 0 ? NOBODY : undefined;

    const rows: readonly {
      readonly name: string;
      readonly args: (dir: string) => string[];
      readonly damage: (dir: string) => void;
      readonly line: (dir: string) => string;
      readonly otherUser?: boolean;
    }[] = [
      {
        name: 'status with pki.db missing names it and creates no empty one',
        args: () => ['status'],
        damage: (dir) => {
          for (const file of ['pki.db', 'pki.db-wal', 'pki.db-shm']) rmSync(join(dir, file), { force: true });
        },
        line: (dir) =>
          `dmz-pki: the CA state in ${JSON.stringify(dir)} is damaged: ${JSON.stringify(join(dir, 'pki.db'))}: it is missing (PKI_ERR_STATE_DAMAGED); restore the state from its backup into an empty directory ('dmz-pki --state NEW_DIR restore --in BACKUP'); do not run init over it`,
      },
      {
        name: 'agents with a corrupt pki.db names the file',
        args: () => ['agents'],
        damage: (dir) => {
          for (const file of ['pki.db-wal', 'pki.db-shm']) rmSync(join(dir, file), { force: true });
          writeFileSync(join(dir, 'pki.db'), 'not a database '.repeat(100), { mode: 0o600 });
        },
        line: (dir) =>
          `dmz-pki: the CA state in ${JSON.stringify(dir)} is damaged: ${JSON.stringify(join(dir, 'pki.db'))}: it is not a readable database (PKI_ERR_STATE_DAMAGED); restore the state from its backup into an empty directory ('dmz-pki --state NEW_DIR restore --in BACKUP'); do not run init over it`,
      },
      {
        name: 'agents with a corrupt ca.pem says the state is damaged',
        args: () => ['agents'],
        damage: (dir) => writeFileSync(join(dir, 'ca.pem'), 'not a certificate\n', { mode: 0o600 }),
        line: (dir) =>
          `dmz-pki: the CA state in ${JSON.stringify(dir)} is damaged: ${JSON.stringify(join(dir, 'ca.pem'))}: it is not a PEM certificate (PKI_ERR_STATE_DAMAGED); restore the state from its backup into an empty directory ('dmz-pki --state NEW_DIR restore --in BACKUP'); do not run init over it`,
      },
      {
        name: 'agents on a state directory of another user says to run as its owner',
        args: () => ['agents'],
        damage: (dir) => {
          if (asOther === undefined) chmodSync(dir, 0o000);
        },
        line: (dir) =>
          `dmz-pki: cannot read ${JSON.stringify(join(dir, 'ca.pem'))}: permission denied (CLI_ERR_FILE); run as the owner of the state directory ${JSON.stringify(dir)} (uid ${statSync(dir).uid}), or fix its permissions`,
        otherUser: true,
      },
      {
        name: 'init on a state directory of another user does not say the CA exists',
        args: () => ['init', '--trust-domain', 'plant.example', '--dns', 'localhost'],
        damage: (dir) => {
          if (asOther === undefined) chmodSync(dir, 0o000);
        },
        line: (dir) =>
          `dmz-pki: cannot read ${JSON.stringify(join(dir, 'ca.pem'))}: permission denied (CLI_ERR_FILE); run as the owner of the state directory ${JSON.stringify(dir)} (uid ${statSync(dir).uid}), or fix its permissions`,
        otherUser: true,
      },
    ];

    for (const [index, row] of rows.entries()) {
      it(`state - ${row.name}: exit 1, one line, nothing changed`, async () => {
        const dir = join(root, `damaged-${index}`);
        cpSync(pristine, dir, { recursive: true });
        row.damage(dir);
        const snapshot = () => {
          chmodSync(dir, 0o700);
          const files = readdirSync(dir).sort();
          const contents = files.map((file) => readFileSync(join(dir, file)).toString('base64'));
          return { files, contents };
        };
        const run =
          row.otherUser === true && asOther !== undefined
            ? await runPki(['--state', dir, ...row.args(dir)], {}, asOther)
            : await runInProcess(['--state', dir, ...row.args(dir)]);
        const expected = row.line(dir);
        const after = snapshot();
        assertExit(run, 1);
        assert.equal(run.stderr.split('\n')[0], expected);
        assert.equal(run.stdout, '');
        cpSync(pristine, join(root, `compare-${index}`), { recursive: true });
        const compare = join(root, `compare-${index}`);
        row.damage(compare);
        chmodSync(compare, 0o700);
        assert.deepEqual(after.files, readdirSync(compare).sort(), 'no file made or removed');
        assert.deepEqual(
          after.contents,
          after.files.map((file) => readFileSync(join(compare, file)).toString('base64')),
          'no file changed',
        );
      });
    }

    /** A copy of the CA whose directory and files are all nobody's, as the relay user's are. */
    const nobodysCopy = (name: string): string => {
      const dir = join(root, name);
      cpSync(pristine, dir, { recursive: true });
      for (const file of ['.', ...readdirSync(dir)]) chownSync(join(dir, file), NOBODY.uid, NOBODY.gid);
      return dir;
    };
    /** Every entry, the directory itself too: owner, mode, time of change and contents. */
    const ownedSnapshot = (dir: string) =>
      ['.', ...readdirSync(dir).sort()].map((file) => {
        const path = join(dir, file);
        const { uid, mode, mtimeMs } = statSync(path);
        return {
          file,
          uid,
          mode,
          mtimeMs,
          contents: file === '.' ? '' : readFileSync(path).toString('base64'),
        };
      });

    it(
      "state - every command refuses a directory of another user, root too: the relay's user could not read what it wrote",
      { skip: process.getuid?.() !== 0 && 'only root can make a directory of another user' },
      async () => {
        const dir = nobodysCopy('of-nobody');
        const snapshot = () => ownedSnapshot(dir);
        const before = snapshot();
        const expected =
          `dmz-pki: the state directory ${JSON.stringify(dir)} belongs to uid 65534 (nobody), not to this user (uid 0): ` +
          "files written now would be unreadable by its owner (PKI_ERR_STATE_OWNER); run it as the directory's owner: runuser -u nobody -- dmz-pki ...";
        for (const args of [['relay-cert'], ['revoke', 'line-7'], ['crl'], ['status'], ['agents']]) {
          const run = await runInProcess(['--state', dir, ...args]);
          assertExit(run, 1);
          assert.equal(run.stderr.split('\n')[0], expected, args.join(' '));
          assert.deepEqual(snapshot(), before, `${args.join(' ')} changed nothing`);
        }
      },
    );

    it(
      "state - a file another user left in the state is refused by name: root's pki.db-wal read as SQLite's 'permission denied' to the owner",
      { skip: process.getuid?.() !== 0 && 'only root can give a file to another user' },
      async () => {
        const dir = nobodysCopy('root-file-of-nobody');
        // What SQLite leaves beside pki.db when a root run dies before closing it: root's, 0600.
        const wal = join(dir, 'pki.db-wal');
        writeFileSync(wal, '', { mode: 0o600 });
        const snapshot = () => ownedSnapshot(dir);
        const before = snapshot();
        const expected =
          `dmz-pki: ${JSON.stringify(wal)} belongs to uid 0 (root), not to uid 65534 (nobody), the owner of the state directory: ` +
          `left by a run as another user, it may be unreadable by the relay and dmz-pki (PKI_ERR_STATE_OWNER); give it back, as root: chown nobody ${JSON.stringify(wal)}`;
        for (const args of [['status'], ['revoke', 'line-7']]) {
          const run = await runPki(['--state', dir, ...args], {}, NOBODY);
          assertExit(run, 1);
          assert.equal(run.stderr, `${expected}\n`, args.join(' '));
          assert.deepEqual(snapshot(), before, `${args.join(' ')} changed nothing`);
        }
      },
    );
  });
});

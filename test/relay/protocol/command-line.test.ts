/**
 * What an operator meets when something is wrong, across the three commands (and the demo): one
 * table of command lines and conditions, each with its exit status (2 for a command line that
 * cannot run as written, 1 for everything else), the exact first line on stderr (what is wrong,
 * the stable code, what to do; never a stack trace), and nothing left behind on disk.
 *
 * The commands run in this process through their run...Cli functions (a process costs half a
 * second of tsx start-up); the demo, which has none, runs as a process.
 */
import assert from 'node:assert/strict';
import { execFile, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { runAgentCli } from '../../../agents/cli.ts';
import { runPkiCli } from '../../../pki/cli.ts';
import { initializeState, openState } from '../../../pki/state.ts';
import { createEnrollmentToken } from '../../../pki/tokens.ts';
import { runRelayCli } from '../../../relay/cli.ts';
import {
  exitStatusOf,
  formatError,
  parseCommandLine,
  usageError,
  type Output,
} from '../../../relay/protocol/command-line.ts';
import { ConfigError, DmzError } from '../../../relay/protocol/errors.ts';
import { describeHolder } from '../../../relay/protocol/process-lock.ts';
import { CA_STATE_TRUST_DOMAIN, createCaState } from '../../support/ca-state.ts';
import { captureOutput } from '../../support/cli-output.ts';
import { freePort } from '../../support/ports.ts';
import { waitFor } from '../../support/wait.ts';
import { spawnChild } from '../../support/child-processes.ts';

const ROOT = join(import.meta.dirname, '..', '..', '..');
/** The agent retries a refused connection for 10 s (agents/enroll.ts) before it explains it. */
const REFUSED_BOUND_MS = 30_000;

interface Outcome {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

type Program = 'dmz-pki' | 'dmz-agent' | 'dmz-relay';
const RUNNERS: Record<Program, (argv: string[], env: NodeJS.ProcessEnv, output: Output) => Promise<number>> =
  {
    'dmz-pki': runPkiCli,
    'dmz-agent': runAgentCli,
    'dmz-relay': runRelayCli,
  };

async function runHere(program: Program, argv: string[]): Promise<Outcome> {
  const run = captureOutput();
  const code = await RUNNERS[program](argv, {}, run.output);
  return { code, stdout: run.stdout(), stderr: run.stderr() };
}

function runDemo(args: readonly string[]): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'deploy', 'demo.ts'), ...args],
      { cwd: ROOT, encoding: 'utf8', timeout: 30_000 },
      (error, stdout, stderr) => {
        if (error !== null && typeof error.code !== 'number')
          reject(new Error('demo did not run', { cause: error }));
        else resolve({ code: error === null ? 0 : Number(error.code), stdout, stderr });
      },
    );
  });
}

/**
 * Every path under `dir` with a digest of each file's contents, for "nothing changed on disk": a
 * failed start must not even reissue the CRL or write to pki.db.
 */
function listTree(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((entry) => {
      const path = join(dir, entry);
      const name = relative(dir, path);
      if (!statSync(path).isFile()) return name;
      return `${name} ${createHash('sha256').update(readFileSync(path)).digest('hex').slice(0, 16)}`;
    })
    .sort();
}

/** A PKI state's audit trail: its log and the store that keeps the log's head. */
const AUDIT_TRAIL_FILES = ['pki-audit.jsonl', 'pki.db', 'pki.db-wal', 'pki.db-shm'];

function auditRecords(stateDir: string): { outcome?: string; code?: string }[] {
  return readFileSync(join(stateDir, 'pki-audit.jsonl'), 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as { outcome?: string; code?: string });
}

describe('command line - every failure: exit status, one line on stderr, nothing left behind', () => {
  let root: string;
  /** A CA, unencrypted. */
  let state: string;
  /** A CA whose keys are encrypted. */
  let lockedState: string;
  let expiredToken: string;
  let closedPortToken: string;
  let busyServer: Server;
  let busyPort: number;
  let holder: ChildProcess;
  let lockedByOther: string;

  /** A relay.yaml in `root` under `name`, relative paths as an operator writes them. */
  async function relayConfig(name: string, overrides: Record<string, unknown> = {}): Promise<string> {
    const path = join(root, name);
    await writeFile(
      path,
      stringify({
        trustDomain: CA_STATE_TRUST_DOMAIN,
        state: './state',
        listen: {
          agents: { host: '127.0.0.1', port: 0 },
          admin: { host: '127.0.0.1', port: 0 },
          enrollment: { host: '127.0.0.1', port: 0, mode: 'auto' },
        },
        log: { level: 'warn', audit: './logs/audit.log' },
        policy: [{ role: 'ot' }],
        ...overrides,
      }),
    );
    return path;
  }

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'dmz-cli-errors-'));
    state = join(root, 'state');
    lockedState = join(root, 'locked-state');
    await createCaState(state);
    await initializeState({
      stateDir: lockedState,
      trustDomain: CA_STATE_TRUST_DOMAIN,
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1'],
      enrollmentUrls: ['https://127.0.0.1:8444'],
      passphrase: 'correct horse',
      caKeyBits: 2048,
    });
    busyServer = createServer();
    busyPort = await new Promise<number>((resolve) =>
      busyServer.listen(0, '127.0.0.1', () => resolve((busyServer.address() as { port: number }).port)),
    );
    const closedPort = await freePort();
    const opened = await openState(state);
    try {
      const signingKeyPem = await opened.loadTokenSigningKey();
      const token = (name: string, urls: string[], now?: Date) =>
        createEnrollmentToken({
          signingKeyPem,
          issuer: opened.tokenIssuer,
          name,
          role: 'ot',
          ttlSeconds: 60,
          urls,
          caFingerprint: opened.caFingerprint,
          ...(now === undefined ? {} : { now }),
        });
      expiredToken = (
        await token('press-1', [`https://127.0.0.1:${closedPort}`], new Date(Date.now() - 3_600_000))
      ).token;
      closedPortToken = (await token('press-2', [`https://127.0.0.1:${closedPort}`])).token;
    } finally {
      opened.close();
    }
    // A live process that is not this one holds the lock of a copy of the state.
    holder = spawnChild(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    lockedByOther = join(root, 'state-in-use');
    await createCaState(lockedByOther);
    // It took the lock itself (its boot and command line recorded), so it is still the holder.
    await writeFile(
      join(lockedByOther, 'relay.lock'),
      `${JSON.stringify(describeHolder(holder.pid ?? 0))}\n`,
    );
    // A CA whose database was lost.
    await createCaState(join(root, 'state-no-db'));
    for (const file of ['pki.db', 'pki.db-wal', 'pki.db-shm']) {
      await rm(join(root, 'state-no-db', file), { force: true });
    }
    // Someone's directory with a file in it, and a plain file: --dir targets the demo must not clear.
    await mkdir(join(root, 'not-the-demos'));
    await writeFile(join(root, 'not-the-demos', 'notes.txt'), 'keep me\n');
    await writeFile(join(root, 'plain-file'), 'keep me too\n');
  });
  after(async () => {
    holder.kill('SIGKILL');
    busyServer.close();
    await rm(root, { recursive: true, force: true });
  });

  interface Row {
    readonly name: string;
    readonly run: () => Promise<Outcome>;
    readonly code: number;
    /** The first line on stderr, exactly; a function for lines that name the test's own paths. */
    readonly line: string | (() => string) | RegExp;
    readonly timeoutMs?: number;
    /**
     * The CA state whose audit log records this refusal (pki/audit-log.ts): one record more there,
     * and the log's head in pki.db, are all that may change.
     */
    readonly audited?: () => string;
  }

  const pki =
    (...args: string[]) =>
    () =>
      runHere('dmz-pki', args);
  const agent =
    (...args: string[]) =>
    () =>
      runHere('dmz-agent', args);
  const relay =
    (...args: string[]) =>
    () =>
      runHere('dmz-relay', args);
  const at = (...parts: string[]) => join(root, ...parts);
  const q = (text: string) => JSON.stringify(text);

  const rows: readonly Row[] = [
    // dmz-pki: the command line.
    {
      name: 'dmz-pki --stat DIR agents (a typo of --state)',
      run: () => runHere('dmz-pki', ['--stat', state, 'agents']),
      code: 2,
      line: "dmz-pki: unknown option --stat (CLI_ERR_USAGE); see 'dmz-pki --help'",
    },
    {
      name: 'dmz-pki agents --state (no value)',
      run: pki('agents', '--state'),
      code: 2,
      line: "dmz-pki: --state needs a value (CLI_ERR_USAGE); see 'dmz-pki agents --help'",
    },
    {
      name: 'dmz-pki --state agents (the command taken as the directory)',
      run: pki('--state', 'agents'),
      code: 2,
      line: 'dmz-pki: no command given: --state took "agents" as its directory (CLI_ERR_USAGE); write --state DIR agents',
    },
    {
      name: 'dmz-pki token create --role plc',
      run: () =>
        runHere('dmz-pki', ['--state', state, 'token', 'create', '--name', 'press-7', '--role', 'plc']),
      code: 2,
      line: `dmz-pki: --role must be ot or it: "plc" (CLI_ERR_INVALID_ARGUMENT); see 'dmz-pki token create --help'`,
    },
    {
      name: 'dmz-pki token create --ttl 10s',
      run: () =>
        runHere('dmz-pki', [
          '--state',
          state,
          'token',
          'create',
          '--name',
          'press-7',
          '--role',
          'ot',
          '--ttl',
          '10s',
        ]),
      code: 2,
      line: `dmz-pki: --ttl must be from 1m to 7d: "10s" (CLI_ERR_INVALID_ARGUMENT); see 'dmz-pki token create --help'`,
    },
    {
      name: 'dmz-pki token create --name Press_7',
      run: () =>
        runHere('dmz-pki', ['--state', state, 'token', 'create', '--name', 'Press_7', '--role', 'ot']),
      code: 2,
      line: `dmz-pki: --name must be a lower-case DNS label (a-z, 0-9 and inner '-', at most 63 characters): "Press_7" (CLI_ERR_INVALID_ARGUMENT); see 'dmz-pki token create --help'`,
    },
    {
      name: 'dmz-pki token create --name a --name b',
      run: () =>
        runHere('dmz-pki', [
          '--state',
          state,
          'token',
          'create',
          '--name',
          'a',
          '--name',
          'b',
          '--role',
          'ot',
        ]),
      code: 2,
      line: `dmz-pki: --name given twice (CLI_ERR_USAGE); see 'dmz-pki token create --help'`,
    },
    {
      name: 'dmz-pki token create --role ot --role it',
      run: () =>
        runHere('dmz-pki', [
          '--state',
          state,
          'token',
          'create',
          '--name',
          'a',
          '--role',
          'ot',
          '--role',
          'it',
        ]),
      code: 2,
      line: `dmz-pki: --role given twice (CLI_ERR_USAGE); see 'dmz-pki token create --help'`,
    },
    {
      name: 'dmz-relay --config a.yaml --config b.yaml',
      run: () => runHere('dmz-relay', ['--config', 'a.yaml', '--config', 'b.yaml']),
      code: 2,
      line: `dmz-relay: --config given twice (CLI_ERR_USAGE); see 'dmz-relay --help'`,
    },
    {
      name: 'dmz-pki init --ip 999.1.1.1',
      run: () =>
        runHere('dmz-pki', [
          '--state',
          at('new-ca'),
          'init',
          '--trust-domain',
          'plant.example',
          '--ip',
          '999.1.1.1',
        ]),
      code: 2,
      line: `dmz-pki: --ip must be an IPv4 or hex-form IPv6 address: "999.1.1.1" (CLI_ERR_INVALID_ARGUMENT); see 'dmz-pki init --help'`,
    },
    // dmz-pki: the state and the files it names.
    {
      name: 'dmz-pki agents on a directory with no CA',
      run: () => runHere('dmz-pki', ['--state', at('no-ca'), 'agents']),
      code: 1,
      line: () =>
        `dmz-pki: no certificate authority in ${q(at('no-ca'))} (PKI_ERR_NOT_INITIALIZED); check the state directory given, or create one with 'dmz-pki --state ${q(at('no-ca'))} init'`,
    },
    {
      name: 'dmz-pki init on a directory that holds a CA',
      run: () =>
        runHere('dmz-pki', [
          '--state',
          state,
          'init',
          '--trust-domain',
          'plant.example',
          '--ip',
          '127.0.0.1',
        ]),
      code: 1,
      line: () =>
        `dmz-pki: ${q(state)} already holds a certificate authority (PKI_ERR_ALREADY_INITIALIZED); it is left as it is; choose another directory for a new CA`,
      audited: () => state,
    },
    {
      name: 'dmz-pki crl --out into a missing directory',
      run: () => runHere('dmz-pki', ['--state', state, 'crl', '--out', at('missing', 'crl.pem')]),
      code: 1,
      line: () =>
        `dmz-pki: cannot write the CRL to ${q(at('missing', 'crl.pem'))}: it or a directory above it does not exist (CLI_ERR_FILE); create its directory first, or choose another --out`,
    },
    {
      name: 'dmz-pki crl --out on a directory',
      run: () => runHere('dmz-pki', ['--state', state, 'crl', '--out', at('not-the-demos')]),
      code: 1,
      line: () =>
        `dmz-pki: cannot write the CRL to ${q(at('not-the-demos'))}: it is a directory (CLI_ERR_FILE); --out takes a file name, not a directory`,
    },
    {
      name: 'dmz-pki token create on an encrypted CA without a passphrase',
      run: () =>
        runHere('dmz-pki', ['--state', lockedState, 'token', 'create', '--name', 'press-7', '--role', 'ot']),
      code: 1,
      line: 'dmz-pki: the token-signing key is encrypted and no passphrase was given (PKI_ERR_PASSPHRASE); give it with --passphrase-file FILE or DMZ_PKI_PASSPHRASE',
      audited: () => lockedState,
    },
    // dmz-agent.
    {
      name: 'dmz-agent enroll --tokne (a typo)',
      run: agent('enroll', '--tokne', 'x', '--dir', 'd'),
      code: 2,
      line: "dmz-agent: unknown option --tokne (CLI_ERR_USAGE); see 'dmz-agent enroll --help'",
    },
    {
      name: 'dmz-agent enroll with an expired token (the enrollment port closed)',
      run: () => runHere('dmz-agent', ['enroll', '--token', expiredToken, '--dir', at('agents', 'press-1')]),
      code: 1,
      line: /^dmz-agent: the enrollment token for press-1 expired at \S+Z \(PKI_ERR_TOKEN_EXPIRED\); ask the relay's operator for a new one \(dmz-pki token create --name press-1 --role ot\)$/,
    },
    {
      name: 'dmz-agent enroll with a token no longer outstanding (the enrollment port closed)',
      run: () =>
        runHere('dmz-agent', ['enroll', '--token', closedPortToken, '--dir', at('agents', 'press-2')]),
      code: 1,
      line: /^dmz-agent: nothing listens at https:\/\/127\.0\.0\.1:\d+: a relay opens its enrollment port only while a token is outstanding, so the token was probably used or revoked already, or the relay is not running \(AGENT_ERR_ENROLLMENT_PORT_CLOSED\); ask the relay's operator to check 'dmz-pki token list --all' and create a new token \(dmz-pki token create --name press-2 --role ot\)$/,
      timeoutMs: REFUSED_BOUND_MS,
    },
    {
      name: 'dmz-agent enroll --token-file that does not exist',
      run: () =>
        runHere('dmz-agent', ['enroll', '--token-file', at('token.txt'), '--dir', at('agents', 'press-3')]),
      code: 1,
      line: () =>
        `dmz-agent: cannot read the token from ${q(at('token.txt'))}: it or a directory above it does not exist (CLI_ERR_FILE); check the path`,
    },
    {
      name: 'dmz-agent enroll --dir on a file',
      run: () => runHere('dmz-agent', ['enroll', '--token', closedPortToken, '--dir', at('plain-file')]),
      code: 1,
      line: () =>
        `dmz-agent: cannot use ${q(at('plain-file'))} as the credential directory: it is not a directory (CLI_ERR_FILE); give --dir a directory, or a path where one can be created`,
    },
    // dmz-relay.
    {
      name: 'dmz-relay --config (no value)',
      run: relay('--config'),
      code: 2,
      line: "dmz-relay: --config needs a value (CLI_ERR_USAGE); see 'dmz-relay --help'",
    },
    {
      name: 'dmz-relay --config on a file that does not exist',
      run: () => runHere('dmz-relay', ['--config', at('absent.yaml')]),
      code: 1,
      line: () =>
        `dmz-relay: cannot read the configuration file ${q(at('absent.yaml'))}: it or a directory above it does not exist (CONFIG_ERR_UNREADABLE); check --config`,
    },
    {
      name: 'dmz-relay with a YAML syntax error',
      run: async () => {
        await writeFile(at('broken.yaml'), 'trustDomain: [plant.example\nstate: ./state\n');
        return runHere('dmz-relay', ['--config', at('broken.yaml')]);
      },
      code: 1,
      line: /^dmz-relay: \/.*\/broken\.yaml: YAML: .* at line \d+, column \d+ \(CONFIG_ERR_INVALID\)$/,
    },
    {
      name: 'dmz-relay with an unknown key',
      run: async () =>
        runHere('dmz-relay', ['--config', await relayConfig('unknown-key.yaml', { lsten: {} })]),
      code: 1,
      line: () => `dmz-relay: ${at('unknown-key.yaml')}: /lsten: unknown key (CONFIG_ERR_INVALID)`,
    },
    {
      name: 'dmz-relay on a CA state whose pki.db is gone',
      run: async () =>
        runHere('dmz-relay', ['--config', await relayConfig('no-db.yaml', { state: './state-no-db' })]),
      code: 1,
      line: () =>
        `dmz-relay: the CA state in ${q(at('state-no-db'))} is damaged: ${q(at('state-no-db', 'pki.db'))}: it is missing (PKI_ERR_STATE_DAMAGED); restore the state from its backup into an empty directory ('dmz-pki --state NEW_DIR restore --in BACKUP'); do not run init over it`,
    },
    {
      name: 'dmz-relay on a state directory with no CA',
      run: async () =>
        runHere('dmz-relay', ['--config', await relayConfig('no-ca.yaml', { state: './no-ca' })]),
      code: 1,
      line: () =>
        `dmz-relay: no certificate authority in the state directory ${q(at('no-ca'))} (PKI_ERR_NOT_INITIALIZED); create it with 'dmz-pki --state ${q(at('no-ca'))} init --trust-domain ${CA_STATE_TRUST_DOMAIN} --dns NAME', or correct "state" in the configuration (or --state)`,
    },
    {
      name: "dmz-relay with a trustDomain other than the CA's",
      run: async () =>
        runHere('dmz-relay', [
          '--config',
          await relayConfig('other-domain.yaml', { trustDomain: 'other.example' }),
        ]),
      code: 1,
      line: () =>
        `dmz-relay: trustDomain "other.example" is not the trust domain of the CA in ${q(state)} ("${CA_STATE_TRUST_DOMAIN}") (CONFIG_ERR_TRUST_DOMAIN); set trustDomain: ${CA_STATE_TRUST_DOMAIN} in the configuration, or point "state" at a CA made for other.example`,
    },
    {
      name: 'dmz-relay with the agents and enrollment listeners on one port',
      run: async () =>
        runHere('dmz-relay', [
          '--config',
          await relayConfig('same-port.yaml', {
            listen: {
              agents: { host: '0.0.0.0', port: 8443 },
              admin: { host: '127.0.0.1', port: 9443 },
              enrollment: { host: '127.0.0.1', port: 8443, mode: 'auto' },
            },
          }),
        ]),
      code: 1,
      line: () =>
        `dmz-relay: ${at('same-port.yaml')}: /listen/enrollment/port: must differ from listen.agents.port (both 8443 on overlapping addresses) (CONFIG_ERR_INVALID)`,
    },
    {
      name: 'dmz-relay with its agent port in use',
      run: async () =>
        runHere('dmz-relay', [
          '--config',
          await relayConfig('busy.yaml', {
            listen: {
              agents: { host: '127.0.0.1', port: busyPort },
              admin: { host: '127.0.0.1', port: 0 },
              enrollment: { host: '127.0.0.1', port: 0, mode: 'off' },
            },
          }),
        ]),
      code: 1,
      line: () =>
        `dmz-relay: the agent listener cannot listen on 127.0.0.1:${busyPort} (listen.agents): the port is in use (RELAY_ERR_LISTEN); stop what holds it (ss -ltnp 'sport = :${busyPort}') or choose another listen.agents.port`,
    },
    {
      name: 'dmz-relay with an encrypted CA key and no passphrase',
      run: async () =>
        runHere('dmz-relay', ['--config', await relayConfig('locked.yaml', { state: './locked-state' })]),
      code: 1,
      line: 'dmz-relay: the CA key is encrypted and no passphrase was given (PKI_ERR_PASSPHRASE); give it with pki.passphraseFile in the configuration or the DMZ_PKI_PASSPHRASE environment variable',
    },
    {
      name: 'dmz-relay on a state directory another relay holds',
      run: async () =>
        runHere('dmz-relay', ['--config', await relayConfig('in-use.yaml', { state: './state-in-use' })]),
      code: 1,
      line: () =>
        `dmz-relay: another relay (pid ${holder.pid}) is running on the state directory ${q(lockedByOther)} (RELAY_ERR_STATE_LOCKED); stop it first, or give this relay a state directory of its own; if pid ${holder.pid} is no relay, remove ${q(join(lockedByOther, 'relay.lock'))}`,
    },
    {
      name: 'dmz-relay with an audit log it cannot open',
      run: async () =>
        runHere('dmz-relay', [
          '--config',
          await relayConfig('audit.yaml', { log: { level: 'warn', audit: './no-ca.yaml/audit.log' } }),
        ]),
      code: 1,
      line: () =>
        `dmz-relay: cannot open the log file (log.audit) ${q(at('no-ca.yaml', 'audit.log'))}: a part of the path is not a directory (RELAY_ERR_LOG); make its directory writable by the relay's user, or change log.audit`,
    },
    // The demo.
    {
      name: 'npm run demo -- --seconds abc',
      run: () => runDemo(['--seconds', 'abc', '--dir', at('demo')]),
      code: 2,
      line: `demo: --seconds must be a whole number up to 9999999: "abc" (CLI_ERR_INVALID_ARGUMENT); see 'npm run demo -- --help'`,
    },
    {
      name: 'npm run demo -- --dir on a non-empty directory the demo did not make',
      run: () => runDemo(['--seconds', '1', '--dir', at('not-the-demos')]),
      code: 1,
      line: () =>
        `demo: --dir ${q(at('not-the-demos'))} is not empty and was not made by the demo (CLI_ERR_FILE); give --dir a new or empty directory; the demo empties its directory on each run`,
    },
    {
      name: 'npm run demo -- --dir on a file',
      run: () => runDemo(['--seconds', '1', '--dir', at('plain-file')]),
      code: 1,
      line: () =>
        `demo: --dir ${q(at('plain-file'))} is not a directory (CLI_ERR_FILE); give --dir a directory of the demo's own (it is created if absent)`,
    },
    {
      name: 'npm run demo -- --bogus',
      run: () => runDemo(['--bogus']),
      code: 2,
      line: "demo: unknown option --bogus (CLI_ERR_USAGE); see 'npm run demo -- --help'",
    },
  ];

  // One at a time: "nothing left on disk" is judged on the whole scratch directory.
  for (const row of rows) {
    it(`command line - ${row.name}: exit ${row.code}`, { timeout: row.timeoutMs ?? 20_000 }, async () => {
      const auditedState = row.audited?.();
      const recordsBefore = auditedState === undefined ? [] : auditRecords(auditedState);
      const before = listTree(root);
      const outcome = await row.run();
      assert.equal(outcome.code, row.code, outcome.stderr);
      const [first] = outcome.stderr.split('\n');
      const expected = typeof row.line === 'function' ? row.line() : row.line;
      if (expected instanceof RegExp) assert.match(first ?? '', expected);
      else assert.equal(first, expected);
      assert.doesNotMatch(outcome.stderr, /^\s+at /m, 'no stack trace');
      assert.equal(outcome.stdout, '');
      // Config files the row wrote itself are the only new entries, besides a refusal's record.
      const trail =
        auditedState === undefined
          ? []
          : AUDIT_TRAIL_FILES.map((file) => relative(root, join(auditedState, file)));
      const isConfig = (entry: string) => entry.split(' ')[0]?.endsWith('.yaml') === true;
      const isTrail = (entry: string) => trail.includes(entry.split(' ')[0] ?? '');
      const kept = (entry: string) => !isConfig(entry) && !isTrail(entry);
      const after = listTree(root).filter(kept);
      assert.deepEqual(after, before.filter(kept), 'nothing left on disk');
      if (auditedState !== undefined) {
        const records = auditRecords(auditedState);
        assert.deepEqual(records.slice(0, -1), recordsBefore, 'the audit log gained one record');
        const code = /\((\w+)\)/.exec(first ?? '')?.[1];
        assert.deepEqual([records.at(-1)?.outcome, records.at(-1)?.code], ['refused', code]);
      }
    });
  }

  for (const row of [
    {
      name: 'dmz-pki init into an empty directory',
      program: 'dmz-pki',
      args: (dir: string) => [
        '--state',
        dir,
        'init',
        '--trust-domain',
        'plant.example',
        '--dns',
        'localhost',
      ],
      // pki.db is opened before the CA key (seconds of work) is generated.
      started: (dir: string) => existsSync(join(dir, 'pki.db')),
      existing: true,
    },
    {
      name: 'dmz-agent enroll into a new --dir',
      program: 'dmz-agent',
      args: (dir: string) => ['enroll', '--token', closedPortToken, '--dir', dir],
      // It retries the closed enrollment port for seconds once the directory is made.
      started: (dir: string) => existsSync(dir),
      existing: false,
    },
  ] as const) {
    it(`command line - Ctrl-C during ${row.name}: exit 130, nothing left behind`, async () => {
      const before = listTree(root);
      const dir = at('interrupted');
      if (row.existing) await mkdir(dir, { mode: 0o700 });
      const child = spawnChild(process.execPath, [join(ROOT, 'bin', `${row.program}.js`), ...row.args(dir)], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      await waitFor(() => row.started(dir), `${row.program} to start writing`, 15_000);
      child.kill('SIGINT');
      assert.equal(await exited, 130, stderr);
      if (row.existing) {
        assert.deepEqual(readdirSync(dir), [], 'the directory given is left as it was');
        await rm(dir, { recursive: true });
      }
      assert.deepEqual(listTree(root), before, 'nothing left on disk');
    });
  }

  it('command line - --version of each command exits 0 with the version of package.json on stdout', async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const program of ['dmz-pki', 'dmz-agent', 'dmz-relay'] as const) {
      const outcome = await runHere(program, ['--version']);
      assert.equal(outcome.code, 0, outcome.stderr);
      assert.equal(outcome.stdout, `${program} ${version}\n`);
      assert.equal(outcome.stderr, '');
    }
  });

  it('command line - --help of each command and the demo exits 0 with its usage on stdout', async () => {
    for (const program of ['dmz-pki', 'dmz-agent', 'dmz-relay'] as const) {
      const outcome = await runHere(program, ['--help']);
      assert.equal(outcome.code, 0);
      assert.match(outcome.stdout, new RegExp(`^Usage: ${program} `));
      assert.equal(outcome.stderr, '');
    }
    const demo = await runDemo(['--help']);
    assert.equal(demo.code, 0, demo.stderr);
    assert.match(
      demo.stdout,
      /^Usage: npm run demo -- \[--port N\] \[--seconds N\] \[--revoke-after N\] \[--dir DIR\]/,
    );
  });
});

describe('command line - the one format', () => {
  it('format - a configuration with several problems: a first line, then one key path a line', () => {
    const error = new ConfigError(
      [
        { path: '/listen/admin/host', message: 'must be a loopback address' },
        { path: '/policy/0/role', message: 'must be one of: ot, it' },
      ],
      'relay.yaml',
    );
    assert.equal(
      formatError('dmz-relay', error),
      'dmz-relay: relay.yaml is invalid (CONFIG_ERR_INVALID); fix each key below:\n' +
        '  /listen/admin/host: must be a loopback address\n' +
        '  /policy/0/role: must be one of: ot, it\n',
    );
  });

  it('format - a message cannot forge a second line; an unexpected error is one line too', () => {
    assert.equal(
      formatError('dmz-pki', new DmzError('CLI_ERR_FILE', 'cannot read "a\nb"')),
      'dmz-pki: cannot read "a b" (CLI_ERR_FILE)\n',
    );
    assert.equal(
      formatError('dmz-pki', new Error('disk I/O error')),
      'dmz-pki: unexpected error: disk I/O error (CLI_ERR_UNEXPECTED); this is a bug, or a fault of the machine (a full disk, a broken file): see the error\n',
    );
  });

  it('format - exit status 2 for the command line, 1 for the rest', () => {
    assert.equal(exitStatusOf(usageError('x')), 2);
    assert.equal(exitStatusOf(new DmzError('CLI_ERR_INVALID_ARGUMENT')), 2);
    assert.equal(exitStatusOf(new DmzError('PKI_ERR_NOT_INITIALIZED')), 1);
    assert.equal(exitStatusOf(new Error('boom')), 1);
  });

  it('format - node:util parse errors in the words every command uses', () => {
    const options = { state: { type: 'string' }, json: { type: 'boolean' } } as const;
    const parseError = (args: string[]) => {
      try {
        parseCommandLine({ args, options, strict: true, allowPositionals: false });
      } catch (error) {
        return (error as DmzError).message;
      }
      return undefined;
    };
    assert.equal(parseError(['--stat']), 'unknown option --stat');
    assert.equal(parseError(['--state']), '--state needs a value');
    assert.equal(parseError(['--state', '--json']), '--state needs a value');
    assert.equal(parseError(['--json=yes']), '--json takes no value');
    assert.equal(parseError(['extra']), 'unexpected argument "extra"');
  });
});

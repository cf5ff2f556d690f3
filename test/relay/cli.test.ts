/**
 * `dmz-relay` as an operator runs it: a real process on a real CA state directory, configured by
 * a YAML file, reloaded by SIGHUP and by edits to that file, stopped by SIGTERM. What the test
 * sees is what an operator sees: exit codes, stderr, the admin port, the audit file, and agents.
 */
import assert from 'node:assert/strict';
import { execFile, type ChildProcess } from 'node:child_process';
import {
  chmod,
  chown,
  cp,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  writeFile,
} from 'node:fs/promises';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { CLOSE_CODE } from '../../relay/protocol/close-codes.ts';
import {
  CA_STATE_TRUST_DOMAIN,
  createCaState,
  enrollInProcess,
  type EnrolledAgent,
} from '../support/ca-state.ts';
import { freePort, tcpConnectOutcome } from '../support/ports.ts';
import { connectRecordingAgent, type AuditEntry, type RecordingAgent } from '../support/relay-harness.ts';
import { waitFor } from '../support/wait.ts';
import { spawnChild } from '../support/child-processes.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const RELAY_BIN = join(ROOT, 'bin', 'dmz-relay.js');
/** A Node process with tsx takes about a second to start; leave room for a loaded machine. */
const START_BOUND_MS = 15_000;
/** The drain promised to systemd: agents told, listeners closed, audit flushed. */
const STOP_BOUND_MS = 5_000;
/** The file watch debounces for 200 ms, then reloads; a second is ample. */
const RELOAD_BOUND_MS = 3_000;

/** nogroup, a group others are in (nobody, sync): group-writable for it is writable by others. */
const NOGROUP = 65_534;
const AS_ROOT = process.getuid?.() === 0;
const NEEDS_ROOT = !AS_ROOT && 'needs root to give a file a group others are in';

type Rules = readonly Record<string, unknown>[];
const POLICY: Rules = [{ role: 'ot' }, { agent: 'historian', subscribe: ['press-7/#'] }];
const WITHOUT_HISTORIAN: Rules = [{ role: 'ot' }];

interface Ports {
  readonly agents: number;
  readonly admin: number;
  readonly enrollment: number;
}

/** The relay's configuration as a file an operator writes. */
function relayYaml(ports: Ports, policy: Rules, extra: Record<string, unknown> = {}): string {
  return stringify({
    trustDomain: CA_STATE_TRUST_DOMAIN,
    state: './state',
    listen: {
      agents: { host: '127.0.0.1', port: ports.agents },
      admin: { host: '127.0.0.1', port: ports.admin },
      enrollment: { host: '127.0.0.1', port: ports.enrollment, mode: 'off' },
    },
    log: { audit: './audit.log', level: 'warn' },
    policy,
    ...extra,
  });
}

/** Runs dmz-relay to completion (as `user`, given one); a non-zero exit is an outcome here, not an error. */
function runRelay(
  args: readonly string[],
  user?: { readonly uid: number; readonly gid: number },
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [RELAY_BIN, ...args],
      { cwd: ROOT, encoding: 'utf8', timeout: START_BOUND_MS, ...user },
      (error, stdout, stderr) => {
        if (error !== null && typeof error.code !== 'number')
          reject(new Error('dmz-relay did not run', { cause: error }));
        else resolve({ code: error === null ? 0 : Number(error.code), stdout, stderr });
      },
    );
  });
}

describe('relay/cli - arguments and configuration errors', { concurrency: true }, () => {
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dmz-relay-cli-args-'));
    // Two problems of two kinds: a schema error (unknown key) and a semantic one (admin not loopback).
    const invalid = stringify({
      trustDomain: CA_STATE_TRUST_DOMAIN,
      state: './state',
      listen: {
        admin: { host: '0.0.0.0', port: 9443 },
        agents: { host: '127.0.0.1', port: 8443, tls: true },
      },
    });
    await writeFile(join(dir, 'invalid.yaml'), invalid);
    // relay.yaml says who may do what: one others could write (or swap in its directory) is refused
    // before a word of it counts, so the refusal, not the invalid content, is what they report.
    // Group-writable counts for a group others are in: nogroup's, not root's own (Debian's rule).
    for (const [name, mode] of [
      ['group-writable.yaml', 0o664],
      ['world-writable.yaml', 0o666],
    ] as const) {
      await writeFile(join(dir, name), invalid);
      await chmod(join(dir, name), mode);
    }
    await mkdir(join(dir, 'shared'));
    await chmod(join(dir, 'shared'), 0o775);
    await writeFile(join(dir, 'shared', 'relay.yaml'), invalid);
    if (AS_ROOT) {
      await chown(join(dir, 'group-writable.yaml'), 0, NOGROUP);
      await chown(join(dir, 'shared'), 0, NOGROUP);
    }
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const rows: readonly {
    name: string;
    args: (dir: string) => string[];
    code: number;
    stdout?: readonly RegExp[];
    stderr?: readonly RegExp[];
    skip?: string | false;
  }[] = [
    {
      name: '--help prints the usage and exits 0',
      args: () => ['--help'],
      code: 0,
      stdout: [/^Usage: dmz-relay --config FILE/],
    },
    {
      name: 'no --config exits 2, pointing to the help',
      args: () => [],
      code: 2,
      stderr: [/^dmz-relay: --config FILE is required \(CLI_ERR_USAGE\); see 'dmz-relay --help'\n$/],
    },
    {
      name: 'an unknown option exits 2',
      args: (dir) => ['--config', join(dir, 'invalid.yaml'), '--listen', '0.0.0.0'],
      code: 2,
      stderr: [/^dmz-relay: unknown option --listen \(CLI_ERR_USAGE\)/],
    },
    {
      name: 'a config file that does not exist exits 1',
      args: (dir) => ['--config', join(dir, 'missing.yaml')],
      code: 1,
      stderr: [/cannot read .*missing\.yaml/],
    },
    ...(['group', 'world'] as const).map((who) => ({
      name: `a ${who}-writable relay.yaml is refused at start, naming it, its mode and the chmod`,
      args: (dir: string) => ['--config', join(dir, `${who}-writable.yaml`)],
      code: 1,
      skip: who === 'group' && NEEDS_ROOT,
      stderr: [
        new RegExp(
          `^dmz-relay: "[^"]+/${who}-writable\\.yaml" can be changed by group or others \\(mode 066${who === 'group' ? 4 : 6}\\): whoever writes it decides who may do what \\(CONFIG_ERR_PERMISSIONS\\); chmod go-w "[^"]+/${who}-writable\\.yaml"\n$`,
        ),
      ],
    })),
    {
      name: 'a relay.yaml in a directory a group of others may write is refused at start, naming the directory',
      args: (dir) => ['--config', join(dir, 'shared', 'relay.yaml')],
      code: 1,
      skip: NEEDS_ROOT,
      stderr: [
        /^dmz-relay: "[^"]+\/shared" \(above "[^"]+\/shared\/relay\.yaml"\) can be changed by group or others \(mode 0775\).*; chmod go-w "[^"]+\/shared"\n$/,
      ],
    },
    {
      name: 'an invalid config exits 1 and lists every problem with its key path',
      args: (dir) => ['--config', join(dir, 'invalid.yaml')],
      code: 1,
      stderr: [
        /invalid\.yaml is invalid/,
        /\/listen\/admin\/host: must be a loopback address/,
        /\/listen\/agents\/tls: unknown key/,
      ],
    },
  ];
  for (const row of rows) {
    it(`cli - ${row.name}`, { skip: row.skip ?? false }, async () => {
      const { code, stdout, stderr } = await runRelay(row.args(dir));
      assert.equal(code, row.code, stderr);
      for (const pattern of row.stdout ?? []) assert.match(stdout, pattern);
      for (const pattern of row.stderr ?? []) assert.match(stderr, pattern);
      assert.doesNotMatch(stderr, /^\s+at /m, 'no stack trace for the operator');
    });
  }
});

describe('relay/cli - a running relay: health, reloads, drain', () => {
  let dir: string;
  let configPath: string;
  let auditPath: string;
  let ports: Ports;
  let relay: ChildProcess;
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let stderr = '';
  let historianCredentials: EnrolledAgent;
  let pressCredentials: EnrolledAgent;
  let historian: RecordingAgent;
  let press: RecordingAgent;

  /** Every complete line of the audit file so far, parsed. */
  async function auditEntries(): Promise<AuditEntry[]> {
    const text = await readFile(auditPath, 'utf8').catch(() => '');
    // A line still being written has no newline yet: leave it for the next read.
    return text
      .split('\n')
      .slice(0, -1)
      .map((line) => JSON.parse(line) as AuditEntry);
  }

  /** The first audit entry after the first `from` entries that matches `predicate`. */
  const auditEntry = (what: string, predicate: (entry: AuditEntry) => boolean, from = 0) =>
    waitFor(
      async () => (await auditEntries()).slice(from).find(predicate),
      `audit entry: ${what}`,
      RELOAD_BOUND_MS,
      50,
    );

  const connect = (credentials: EnrolledAgent) =>
    connectRecordingAgent({
      url: `wss://127.0.0.1:${ports.agents}/v1/agent`,
      certPem: credentials.certPem,
      keyPem: credentials.keyPem,
      caPem: credentials.caPem,
      connectTimeoutMs: 3_000,
    });

  const health = async () => {
    const response = await fetch(`http://127.0.0.1:${ports.admin}/healthz`);
    assert.equal(response.status, 200);
    return (await response.json()) as Record<string, unknown>;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dmz-relay-cli-'));
    configPath = join(dir, 'relay.yaml');
    auditPath = join(dir, 'audit.log');
    await createCaState(join(dir, 'state'));
    [historianCredentials, pressCredentials] = await Promise.all([
      enrollInProcess(join(dir, 'state'), 'it', 'historian'),
      enrollInProcess(join(dir, 'state'), 'ot', 'press-7'),
    ]);
    ports = { agents: await freePort(), admin: await freePort(), enrollment: await freePort() };
    await writeFile(configPath, relayYaml(ports, POLICY));
    relay = spawnChild(process.execPath, [RELAY_BIN, '--config', configPath], {
      cwd: ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    relay.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    relay.once('exit', (code, signal) => (exit = { code, signal }));
    await waitFor(
      async () => exit ?? (await auditEntries()).find((entry) => entry.event === 'relay.started'),
      'relay.started',
      START_BOUND_MS,
      50,
    );
    assert.equal(exit, undefined, `relay exited at start: ${stderr}`);
  });
  after(async () => {
    if (exit === undefined) {
      relay.kill('SIGKILL');
      await waitFor(() => exit, 'relay killed');
    }
    await rm(dir, { recursive: true, force: true });
  });

  it('cli - /healthz and /metrics answer on loopback, and nowhere else', async (t) => {
    const started = (await auditEntries()).find((entry) => entry.event === 'relay.started');
    assert.equal(started?.['agentPort'], ports.agents);
    assert.equal(started?.['adminPort'], ports.admin);

    const status = await health();
    assert.equal(status['status'], 'ok');
    assert.equal(status['agents'], 0);
    assert.equal(status['sessions'], 0);
    assert.equal(typeof status['uptimeSeconds'], 'number');

    const metrics = await fetch(`http://127.0.0.1:${ports.admin}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(metrics.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await metrics.text();
    assert.match(text, /^# TYPE dmz_relay_connections gauge$/m);
    assert.match(text, /^dmz_relay_connections 0$/m);

    const outside = Object.values(networkInterfaces())
      .flat()
      .find((address) => address !== undefined && address.family === 'IPv4' && !address.internal);
    await t.test(
      `the admin port refuses connections on ${outside?.address ?? 'a non-loopback address'}`,
      { skip: outside === undefined ? 'this machine has no non-loopback IPv4 address' : false },
      async () => {
        assert.equal(await tcpConnectOutcome(outside!.address, ports.admin), 'ECONNREFUSED');
      },
    );
  });

  it('cli - SIGHUP reloads the policy and keeps the agents it still allows', async () => {
    [press, historian] = await Promise.all([connect(pressCredentials), connect(historianCredentials)]);
    const from = (await auditEntries()).length;
    relay.kill('SIGHUP');
    const reloaded = await auditEntry('policy.reloaded', (entry) => entry.event === 'policy.reloaded', from);
    assert.equal(reloaded['disconnected'], 0);
    assert.deepEqual(reloaded['restartRequired'], []);
    // Still connected, and still allowed to do what its rule grants.
    assert.equal(historian.closed, undefined);
    const opened = await historian.client.openSession('press-7', 'press-7/#');
    assert.equal(typeof opened.session, 'number');
    assert.equal((await health())['agents'], 2);
  });

  it("cli - a saved edit that drops an agent's rule cuts that agent, with no signal sent", async () => {
    const from = (await auditEntries()).length;
    // Saved as editors and configuration tools save: written aside, then renamed over the file.
    await writeFile(`${configPath}.tmp`, relayYaml(ports, WITHOUT_HISTORIAN));
    await rename(`${configPath}.tmp`, configPath);
    const closed = await historian.waitClosed(RELOAD_BOUND_MS);
    assert.deepEqual(closed, { code: CLOSE_CODE.policyViolation, reason: 'RELAY_ERR_POLICY_CHANGED' });
    const reloaded = await auditEntry('policy.reloaded', (entry) => entry.event === 'policy.reloaded', from);
    assert.equal(reloaded['disconnected'], 1);
    assert.equal(press.closed, undefined, 'the OT agent is still allowed');
  });

  it('cli - an invalid config written to the file is refused and the running policy kept', async () => {
    const from = (await auditEntries()).length;
    // The historian's rule comes back, next to a broken one: none of it may take effect.
    await writeFile(configPath, relayYaml(ports, [...POLICY, { role: 'scada' }]));
    const refused = await auditEntry(
      'policy.reload_failed',
      (entry) => entry.event === 'policy.reload_failed',
      from,
    );
    assert.match(String(refused['error']), /\/policy\/2\/role/);
    assert.equal((await health())['status'], 'ok');
    assert.equal(press.closed, undefined);
    await assert.rejects(connect(historianCredentials), /RELAY_ERR_FORBIDDEN/);
    assert.equal(
      (await auditEntries()).slice(from).some((entry) => entry.event === 'policy.reloaded'),
      false,
      'nothing was reloaded',
    );
  });

  it('cli - a reload of a relay.yaml made world-writable is refused and the running policy kept', async () => {
    const from = (await auditEntries()).length;
    // The historian's rule back, in a file anyone may now change: as if someone had granted it.
    await writeFile(`${configPath}.tmp`, relayYaml(ports, POLICY));
    await chmod(`${configPath}.tmp`, 0o666);
    await rename(`${configPath}.tmp`, configPath);
    const refused = await auditEntry(
      'policy.reload_failed',
      (entry) => entry.event === 'policy.reload_failed',
      from,
    );
    assert.equal(
      refused['error'],
      `${JSON.stringify(configPath)} can be changed by group or others (mode 0666): whoever writes it decides who may do what (CONFIG_ERR_PERMISSIONS); chmod go-w ${JSON.stringify(configPath)}`,
    );
    assert.match(stderr, /configuration reload refused; keeping the running one/);
    await assert.rejects(connect(historianCredentials), /RELAY_ERR_FORBIDDEN/, 'still denied');
    assert.equal(press.closed, undefined);
    assert.equal(
      (await auditEntries()).slice(from).some((entry) => entry.event === 'policy.reloaded'),
      false,
      'nothing was reloaded',
    );
    await chmod(configPath, 0o644);
  });

  it('cli - SIGTERM drains: agents see 1001, relay.stopped is audited, exit code 0', async () => {
    const started = Date.now();
    relay.kill('SIGTERM');
    const closed = await press.waitClosed(STOP_BOUND_MS);
    assert.deepEqual(closed, { code: CLOSE_CODE.goingAway, reason: 'RELAY_ERR_SHUTTING_DOWN' });
    const exited = await waitFor(() => exit, 'relay exit', STOP_BOUND_MS);
    assert.deepEqual(exited, { code: 0, signal: null }, stderr);
    const elapsed = Date.now() - started;
    assert.ok(elapsed < STOP_BOUND_MS, `stopped after ${elapsed} ms`);
    const entries = await auditEntries();
    assert.equal(entries.at(-1)?.event, 'relay.stopped', 'relay.stopped is the last audit line');
    assert.ok(entries.some((entry) => entry.event === 'agent.disconnected' && entry['agent'] === 'press-7'));
  });
});

describe(
  'relay/cli - a state directory of another user, or a file in it of another user',
  { skip: process.getuid?.() !== 0 && 'only root can give files to another user' },
  () => {
    const NOBODY = { uid: 65534, gid: 65534 } as const;
    let dir: string;
    let pristine: string;
    let copies = 0;

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'dmz-relay-cli-owner-'));
      // nobody passes through the scratch directory, as the relay's user through /var/lib.
      await chmod(dir, 0o711);
      pristine = join(dir, 'pristine');
      await createCaState(pristine);
    });
    after(() => rm(dir, { recursive: true, force: true }));

    /**
     * A copy of the CA and an empty log directory, both nobody's as the relay user's are
     * (StateDirectory=, LogsDirectory=), and a configuration that names them.
     */
    async function nobodysRelay(): Promise<{ config: string; state: string; log: string }> {
      copies += 1;
      const home = join(dir, `relay-${copies}`);
      const state = join(home, 'state');
      const log = join(home, 'log');
      await mkdir(home);
      await chmod(home, 0o711);
      await mkdir(log, { mode: 0o700 });
      await cp(pristine, state, { recursive: true });
      for (const path of [log, state, ...(await readdir(state)).map((file) => join(state, file))]) {
        await chown(path, NOBODY.uid, NOBODY.gid);
      }
      const config = join(home, 'relay.yaml');
      const free = { host: '127.0.0.1', port: 0 };
      await writeFile(
        config,
        stringify({
          trustDomain: CA_STATE_TRUST_DOMAIN,
          state: './state',
          listen: { agents: free, admin: free, enrollment: { ...free, mode: 'off' } },
          log: { audit: './log/audit.log', level: 'warn' },
          policy: [],
        }),
      );
      return { config, state, log };
    }

    /** Every entry of `dirs`, the directories themselves too: name, owner, mode, size, mtime. */
    const listing = async (dirs: readonly string[]) =>
      Promise.all(
        dirs.map(async (where) =>
          Promise.all(
            ['.', ...(await readdir(where)).sort()].map(async (file) => {
              const { uid, gid, mode, size, mtimeMs } = await stat(join(where, file));
              return { where, file, uid, gid, mode, size, mtimeMs };
            }),
          ),
        ),
      );

    it("cli - root is refused on the relay user's state, before it writes anything: what it wrote would be root's", async () => {
      const { config, state, log } = await nobodysRelay();
      const before = await listing([state, log]);
      const run = await runRelay(['--config', config]);
      assert.equal(run.code, 1, run.stderr);
      // The audit log was opened (made, then removed) before the store refused: not even that.
      assert.deepEqual(await listing([state, log]), before, 'nothing made, changed or removed, no audit log');
      assert.equal(
        run.stderr,
        `dmz-relay: the state directory ${JSON.stringify(state)} belongs to uid 65534 (nobody), not to this user (uid 0): files written now would be unreadable by its owner (PKI_ERR_STATE_OWNER); run it as the directory's owner: runuser -u nobody -- dmz-relay --config ..., or start its service: systemctl start dmz-relay\n`,
      );
    });

    it("cli - a root-owned pki.db-wal that a killed root run left is refused by name, not as SQLite's 'permission denied'", async () => {
      const { config, state, log } = await nobodysRelay();
      // What SQLite leaves beside pki.db when its process dies: root's, 0600.
      const wal = join(state, 'pki.db-wal');
      await writeFile(wal, '', { mode: 0o600 });
      const before = await listing([state, log]);
      const run = await runRelay(['--config', config], NOBODY);
      assert.equal(run.code, 1, run.stderr);
      assert.equal(
        run.stderr,
        `dmz-relay: ${JSON.stringify(wal)} belongs to uid 0 (root), not to uid 65534 (nobody), the owner of the state directory: left by a run as another user, it may be unreadable by the relay and dmz-pki (PKI_ERR_STATE_OWNER); give it back, as root: chown nobody ${JSON.stringify(wal)}\n`,
      );
      assert.deepEqual(await listing([state, log]), before, 'nothing made, changed or removed, no audit log');
    });
  },
);

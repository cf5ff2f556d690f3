/**
 * `dmz-relay` and the demo as processes, where what matters is how they behave as processes: a
 * relay whose stdout and stderr readers went away still stops on the first SIGTERM; a stale lock
 * of a relay that died is taken over, and a live one refuses a second relay; both logs carry ISO
 * 8601 times; a relay without policy rules says so; stopping the demo stops what it started.
 */
import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { CA_STATE_TRUST_DOMAIN, createCaState } from '../support/ca-state.ts';
import { freePort } from '../support/ports.ts';
import { waitFor } from '../support/wait.ts';
import { spawnChild } from '../support/child-processes.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const RELAY_BIN = join(ROOT, 'bin', 'dmz-relay.js');
/** A Node process with tsx takes about a second to start; leave room for a loaded machine. */
const START_BOUND_MS = 15_000;
const STOP_BOUND_MS = 5_000;
/** The demo enrolls two agents (key generation, two processes each) before its plant runs. */
const DEMO_START_BOUND_MS = 60_000;
const ISO_8601 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

interface Watched {
  readonly child: ChildProcess;
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  stdout: string;
  stderr: string;
}

function watch(child: ChildProcess): Watched {
  const watched: Watched = { child, exit: undefined, stdout: '', stderr: '' };
  child.stdout?.on('data', (chunk: Buffer) => (watched.stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (watched.stderr += chunk.toString()));
  child.once('exit', (code, signal) => (watched.exit = { code, signal }));
  return watched;
}

function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('relay/cli - as a process', () => {
  let dir: string;
  let config: string;
  let adminPort: number;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dmz-relay-process-'));
    await createCaState(join(dir, 'state'));
    adminPort = await freePort();
    config = join(dir, 'relay.yaml');
    await writeFile(
      config,
      stringify({
        trustDomain: CA_STATE_TRUST_DOMAIN,
        state: './state',
        listen: {
          agents: { host: '127.0.0.1', port: 0 },
          admin: { host: '127.0.0.1', port: adminPort },
          enrollment: { host: '127.0.0.1', port: 0, mode: 'off' },
        },
        // Both logs on the pipes this test closes.
        log: { level: 'info', audit: '-' },
        policy: [],
      }),
    );
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('cli - stale lock taken over, a second relay refused, ISO times, a warning for no policy, and a first SIGTERM that stops it with both pipes closed', async () => {
    // A lock left by a relay that died (SIGKILL, power loss): a pid no process has.
    const lock = join(dir, 'state', 'relay.lock');
    await writeFile(lock, '999999999\n');
    const relay = watch(
      spawnChild(process.execPath, [RELAY_BIN, '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] }),
    );
    try {
      await waitFor(
        () => relay.exit ?? jsonLines(relay.stderr).some((line) => line['msg'] === 'relay listening'),
        'relay listening',
        START_BOUND_MS,
        50,
      );
      assert.equal(relay.exit, undefined, relay.stderr);
      // The lock names the relay: its pid, boot and command line.
      const holder = JSON.parse(await readFile(lock, 'utf8')) as { pid: number; command?: string };
      assert.equal(holder.pid, relay.child.pid);
      if (process.platform === 'linux') assert.match(holder.command ?? '', /dmz-relay\.js/);

      const debug = jsonLines(relay.stderr);
      assert.ok(
        debug.some(
          (line) =>
            line['msg'] === 'took over the state lock of a relay that is gone' && line['pid'] === 999999999,
        ),
      );
      assert.ok(
        debug.some(
          (line) =>
            line['level'] === 40 && /no policy rules: every agent will be refused/.test(String(line['msg'])),
        ),
        relay.stderr,
      );
      for (const line of debug) assert.match(String(line['time']), ISO_8601);
      const audit = await waitFor(
        () => jsonLines(relay.stdout).find((line) => line['event'] === 'relay.started'),
        'relay.started',
      );
      assert.match(String(audit['time']), ISO_8601);

      // A second relay on the same state directory, on ports of its own, is refused.
      const second = watch(
        spawnChild(process.execPath, [RELAY_BIN, '--config', config, '--state', join(dir, 'state')], {
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { ...process.env },
        }),
      );
      await waitFor(() => second.exit, 'the second relay exits', START_BOUND_MS, 50);
      assert.equal(second.exit?.code, 1);
      assert.equal(
        second.stderr,
        `dmz-relay: another relay (pid ${relay.child.pid}) is running on the state directory ${JSON.stringify(join(dir, 'state'))} (RELAY_ERR_STATE_LOCKED); stop it first, or give this relay a state directory of its own; if pid ${relay.child.pid} is no relay, remove ${JSON.stringify(lock)}\n`,
      );

      // The readers go away (a journald restart, `| head`): the drain's log lines meet EPIPE.
      relay.child.stdout?.destroy();
      relay.child.stderr?.destroy();
      const health = await fetch(`http://127.0.0.1:${adminPort}/healthz`);
      assert.equal(health.status, 200, 'still serving after its pipes closed');
      relay.child.kill('SIGTERM');
      const exited = await waitFor(() => relay.exit, 'exit after one SIGTERM', STOP_BOUND_MS);
      assert.deepEqual(exited, { code: 0, signal: null });
      assert.equal(existsSync(lock), false, 'the lock is released');
    } finally {
      if (relay.exit === undefined) relay.child.kill('SIGKILL');
    }
  });
});

describe('deploy/demo - as a process', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dmz-demo-stop-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('demo - SIGTERM to the demo alone stops the relay it started', async () => {
    const demoDir = join(dir, 'demo');
    const demo = watch(
      spawnChild(
        process.execPath,
        ['--import', 'tsx', join(ROOT, 'deploy', 'demo.ts'), '--seconds', '0', '--dir', demoDir],
        {
          cwd: ROOT,
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      ),
    );
    try {
      await waitFor(
        () => demo.exit ?? /historian <- .*speed/.test(demo.stdout),
        'live data in the demo',
        DEMO_START_BOUND_MS,
        100,
      );
      assert.equal(demo.exit, undefined, demo.stderr);
      const relayLock = await readFile(join(demoDir, 'state', 'relay.lock'), 'utf8');
      const relayPid = (JSON.parse(relayLock) as { pid: number }).pid;
      assert.ok(isAlive(relayPid));
      demo.child.kill('SIGTERM');
      const exited = await waitFor(() => demo.exit, 'the demo exits', STOP_BOUND_MS * 3);
      assert.deepEqual(exited, { code: 143, signal: null });
      assert.equal(isAlive(relayPid), false, 'the relay stopped with the demo');
      assert.equal(existsSync(join(demoDir, 'state', 'relay.lock')), false, 'and drained: its lock released');
    } finally {
      if (demo.exit === undefined) demo.child.kill('SIGKILL');
    }
  });
});

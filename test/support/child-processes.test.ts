/**
 * Children started with spawnChild die with the test process that started them: a stand-in test
 * process starts a child that starts a grandchild in a session of its own (as the demo starts the
 * relay and agents), and ends by SIGKILL (a run killed by its timeout), by exiting without
 * stopping them (an `after` hook that never ran), or is left alone while its stand-in `node --test`
 * runner is killed with SIGKILL; none of the three may survive.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { waitFor } from './wait.ts';

const HELPER = new URL('./child-processes.ts', import.meta.url).href;
/** The watchdog kills within a second of the end (it looks for its runner twice a second); room for load. */
const GONE_BOUND_MS = 10_000;

const GRANDCHILD = `
const { spawn } = require('node:child_process');
const grandchild = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { detached: true, stdio: 'ignore' });
console.log(process.pid + ' ' + grandchild.pid);
setInterval(() => {}, 1000);
`;

/** Starts the child and prints `TEST CHILD GRANDCHILD`; any line on stdin makes it exit at once. */
const TEST_PROCESS = `
import { spawnChild } from ${JSON.stringify(HELPER)};
const child = spawnChild(process.execPath, ['-e', ${JSON.stringify(GRANDCHILD)}], { stdio: ['ignore', 'pipe', 'inherit'] });
child.stdout.on('data', (line) => process.stdout.write(process.pid + ' ' + line));
process.stdin.on('data', () => process.exit(0));
`;
const TEST_ARGS = ['--import', 'tsx', '--input-type=module', '-e', TEST_PROCESS];

/** A `node --test` runner as far as the test process can tell: its parent, NODE_TEST_CONTEXT set. */
const RUNNER = `
const { spawn } = require('node:child_process');
spawn(process.execPath, ${JSON.stringify(TEST_ARGS)}, {
  env: { ...process.env, NODE_TEST_CONTEXT: 'child-v8' },
  stdio: ['pipe', 'inherit', 'inherit'],
});
setInterval(() => {}, 1000);
`;

/** This test's own runner's mark taken out: the stand-in is a test process of no runner. */
const ENV_OUTSIDE_A_RUNNER = Object.fromEntries(
  Object.entries(process.env).filter(([name]) => name !== 'NODE_TEST_CONTEXT'),
);

/** Running, and not a zombie waiting for a parent (or a container's init) to reap it. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

const survivors: number[] = [];
after(() => {
  for (const pid of survivors) if (alive(pid)) process.kill(pid, 'SIGKILL');
});

const direct = (): ChildProcess =>
  spawn(process.execPath, TEST_ARGS, { env: ENV_OUTSIDE_A_RUNNER, stdio: ['pipe', 'pipe', 'inherit'] });

const ENDINGS = [
  {
    name: 'the test process killed with SIGKILL',
    start: direct,
    end: (started: ChildProcess) => started.kill('SIGKILL'),
  },
  {
    name: 'the test process exiting without stopping them',
    start: direct,
    end: (started: ChildProcess) => started.stdin?.write('exit\n'),
  },
  {
    name: 'its runner killed with SIGKILL',
    start: () =>
      spawn(process.execPath, ['-e', RUNNER], {
        env: ENV_OUTSIDE_A_RUNNER,
        stdio: ['ignore', 'pipe', 'inherit'],
      }),
    end: (started: ChildProcess) => started.kill('SIGKILL'),
  },
];

describe(
  'test support - child processes die with the test process',
  { skip: process.platform !== 'linux' },
  () => {
    for (const ending of ENDINGS) {
      it(`test process, child and detached grandchild are gone after ${ending.name}`, async () => {
        const started = ending.start();
        let output = '';
        started.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
        const pids = await waitFor(
          () => {
            if (started.exitCode !== null) throw new Error(`exited ${started.exitCode}: ${output}`);
            return /^(\d+) (\d+) (\d+)\n/.exec(output)?.slice(1).map(Number);
          },
          'the pids of the test process, the child and the grandchild',
          GONE_BOUND_MS,
        );
        survivors.push(...pids);
        assert.deepEqual(pids.map(alive), [true, true, true]);
        const exited = new Promise((resolve) => started.once('exit', resolve));
        ending.end(started);
        await exited;
        await waitFor(
          () => !pids.some(alive),
          `all gone, but not ${pids.filter(alive).join(' ')}`,
          GONE_BOUND_MS,
        );
      });
    }
  },
);

/**
 * Child processes that die with the test process that started them, however it ends: a test run
 * killed by a timeout or by `kill -9` runs no `after` hook and no exit handler, and a child it
 * left (the demo, a relay, an agent, a broker) would hold its ports and files on the machine.
 *
 * `spawnChild` is `spawn`, with the child registered with a watchdog: one small process per test
 * process, started with the first child, in a session of its own (no terminal signal or group kill
 * meant for the test reaches it) and deaf to SIGINT, SIGTERM and SIGHUP. It reads a pipe whose
 * only writer is the test process (Node opens pipes close-on-exec, so no child holds it too); the
 * pipe ends when the test process is gone, by exit or by SIGKILL, and the watchdog then kills
 * every registered child that still runs, with all its descendants (the demo's relay and agents
 * run in process groups of their own), and exits. The descendants are found, and stopped, before
 * any is killed: a killed parent's children move to init, where no walk finds them.
 *
 * Under `node --test` the test process is a child of the runner, and outlives a runner killed by
 * a timeout: reporting to nobody, it would run its tests (and their children) to the end. So the
 * watchdog also ends the test process, then the children, once the runner is gone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';

/**
 * The watchdog (CommonJS, run by `node -e`: no loader to start), given the test process's pid and
 * its runner's (0 without one). Lines `+PID` and `-PID` register and release a child; end of input
 * kills what is registered. Linux's /proc gives the parents; a descendant forked while the walk
 * runs is caught by the next round, bounded by MAX_ROUNDS. The runner is gone when the test
 * process's parent is no longer the runner (it moved to init): no pid reuse can fool that.
 */
const WATCHDOG_PROGRAM = `
const { readdirSync, readFileSync } = require('node:fs');
const MAX_ROUNDS = 20;
const RUNNER_CHECK_MS = 500;
const [testPid, runnerPid] = process.argv.slice(1).map(Number);
const children = new Set();
let pending = '';
if (runnerPid !== 0) {
  setInterval(() => {
    const parent = parentOf(testPid);
    if (parent !== undefined && parent !== runnerPid) signal(testPid, 'SIGKILL');
  }, RUNNER_CHECK_MS);
}
function parentOf(pid) {
  try {
    const stat = readFileSync('/proc/' + pid + '/stat', 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => undefined);
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  const lines = (pending + chunk).split('\\n');
  pending = lines.pop();
  for (const line of lines) {
    const pid = Number(line.slice(1));
    if (line[0] === '+') children.add(pid);
    else children.delete(pid);
  }
});
process.stdin.on('end', killAll);
process.stdin.on('error', killAll);
function parents() {
  const parents = new Map();
  let entries = [];
  try {
    entries = readdirSync('/proc');
  } catch {}
  for (const name of entries) {
    if (!/^[0-9]+$/.test(name)) continue;
    const parent = parentOf(name);
    if (parent !== undefined) parents.set(Number(name), parent);
  }
  return parents;
}
function signal(pid, name) {
  try {
    process.kill(pid, name);
  } catch {}
}
function killAll() {
  const doomed = new Set(children);
  for (const pid of doomed) signal(pid, 'SIGSTOP');
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const before = doomed.size;
    for (const [pid, parent] of parents()) {
      if (doomed.has(parent) && !doomed.has(pid)) {
        doomed.add(pid);
        signal(pid, 'SIGSTOP');
      }
    }
    if (doomed.size === before) break;
  }
  for (const pid of doomed) signal(pid, 'SIGKILL');
  process.exit(0);
}
`;

let watchdogInput: Socket | undefined;

/** The watchdog's input, the watchdog started first if need be; never keeps the test running. */
function watchdog(): Socket {
  if (watchdogInput !== undefined) return watchdogInput;
  // The runner sets NODE_TEST_CONTEXT in each test file's process (Node 20 and later).
  const runner = process.env.NODE_TEST_CONTEXT === undefined ? 0 : process.ppid;
  const child = spawn(process.execPath, ['-e', WATCHDOG_PROGRAM, String(process.pid), String(runner)], {
    stdio: ['pipe', 'ignore', 'inherit'],
    detached: true,
  });
  child.unref();
  const input = child.stdin as Socket;
  input.unref();
  // A watchdog gone (killed by hand) leaves the children as they would be without it.
  input.on('error', () => undefined);
  watchdogInput = input;
  return input;
}

function register(child: ChildProcess): ChildProcess {
  const { pid } = child;
  if (pid === undefined) return child;
  const input = watchdog();
  input.write(`+${pid}\n`);
  // Released once reaped: the pid may be another process's after that.
  child.once('exit', () => input.write(`-${pid}\n`));
  return child;
}

/** `spawn`, the child (and what it starts) killed when the test process ends. */
export const spawnChild = ((...args: Parameters<typeof spawn>) => register(spawn(...args))) as typeof spawn;

/** A SIGKILLed process is gone within milliseconds; this much means something is wrong. */
export const KILL_BOUND_MS = 5_000;

/**
 * SIGTERM, as a supervisor stops a program, so that it stops what it started itself (the demo its
 * relay and agents: SIGKILL would leave them running, moved to init, where no watchdog finds
 * them); SIGKILL after `graceMs`. Resolves once it exited, or KILL_BOUND_MS after the SIGKILL.
 */
export async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  if (await exited(child, graceMs)) return;
  child.kill('SIGKILL');
  await exited(child, KILL_BOUND_MS);
}

/** Whether `child` exits within `timeoutMs` (true at once if it has). */
export function exited(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, timeoutMs);
    const onExit = () => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

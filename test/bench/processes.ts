/**
 * Child processes of a benchmark run (the relay, mosquitto and its clients): every one is tracked,
 * so that a failure anywhere still ends them all, and every wait on one is bounded.
 */
import { execFileSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import type { Readable } from 'node:stream';
import { spawnChild } from '../support/child-processes.ts';

/** A child that ignores SIGTERM this long gets SIGKILL. */
const STOP_GRACE_MS = 2_000;
/** Lines a LineLog keeps: enough for a broker's connection log, bounded for a chatty child. */
const MAX_LOGGED_LINES = 10_000;
/** How often waitForPort tries to connect. */
const PORT_POLL_MS = 20;
/** What Linux has used for USER_HZ on every architecture we run on; asked of getconf when it can answer. */
const DEFAULT_CLOCK_TICKS_PER_SECOND = 100;
/** Fields of /proc/<pid>/stat after the `(comm)` field: state is field 3, utime 14, stime 15 (proc(5)). */
const STAT_UTIME_INDEX = 14 - 3;
const STAT_STIME_INDEX = 15 - 3;

export class ChildProcessGroup {
  readonly #children = new Set<ChildProcess>();

  /** Starts a child with piped stdio (unless told otherwise) and tracks it until it exits. */
  spawn(command: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
    const child = spawnChild(command, args, { stdio: 'pipe', ...options });
    this.#children.add(child);
    child.once('exit', () => this.#children.delete(child));
    // A failed spawn (ENOENT) surfaces as 'error'; callers see it through waitForExit or their waits.
    child.once('error', () => this.#children.delete(child));
    // A child that exits early makes writes to its stdin fail with EPIPE; the workload sees the
    // exit (and reports it), so the write error itself must not crash the run.
    child.stdin?.on('error', () => undefined);
    return child;
  }

  get running(): number {
    return this.#children.size;
  }

  /** SIGTERM to every child still running, SIGKILL to those still there after the grace period. */
  async stopAll(): Promise<void> {
    const children = [...this.#children];
    for (const child of children) child.kill('SIGTERM');
    await Promise.all(
      children.map(async (child) => {
        if ((await waitForExit(child, STOP_GRACE_MS)) === undefined) child.kill('SIGKILL');
      }),
    );
  }

  /** Last resort from an exit handler: synchronous, no waiting. */
  killAllNow(): void {
    for (const child of this.#children) child.kill('SIGKILL');
  }
}

/**
 * Rejects as soon as `child` fails to start or exits: raced against a readiness wait, it turns "the
 * client died" into an immediate error instead of a timeout. Never resolves.
 */
export function rejectOnExit(
  child: ChildProcess,
  what: string,
  details: () => string = () => '',
): Promise<never> {
  const failed = new Promise<never>((_, reject) => {
    child.once('error', (error) => reject(new Error(`cannot run ${what}: ${error.message}`)));
    child.once('exit', (code, signal) =>
      reject(new Error(`${what} exited (${code ?? signal}) ${details()}`.trim())),
    );
  });
  failed.catch(() => undefined); // only the race that awaits it reports it
  return failed;
}

/** Exit code (or signal name) of the child, or undefined if it is still running after `timeoutMs`. */
export function waitForExit(child: ChildProcess, timeoutMs: number): Promise<number | string | undefined> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  if (child.signalCode !== null) return Promise.resolve(child.signalCode);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(undefined);
    }, timeoutMs);
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      clearTimeout(timer);
      resolve(code ?? signal ?? undefined);
    };
    child.once('exit', onExit);
  });
}

export interface CommandResult {
  /** Exit code, or the signal name when it was killed (by us, after `timeoutMs`). */
  readonly status: number | string;
  readonly stdout: string;
  readonly stderr: string;
  /** performance.now() just before the spawn and at its exit. */
  readonly startedAt: number;
  readonly exitedAt: number;
}

/**
 * Runs a command in the group to its end and collects its output; one that is still running
 * after `timeoutMs` is killed (SIGKILL), and its status is then the signal's name.
 */
export async function runCommand(
  group: ChildProcessGroup,
  command: string,
  args: readonly string[],
  options: SpawnOptions & { readonly timeoutMs: number },
): Promise<CommandResult> {
  const { timeoutMs, ...spawnOptions } = options;
  const startedAt = performance.now();
  const child = group.spawn(command, args, { ...spawnOptions, stdio: ['ignore', 'pipe', 'pipe'] });
  const stdout = new LineLog(child.stdout!);
  const stderr = new LineLog(child.stderr!);
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const failed = new Promise<never>((_, reject) =>
    child.once('error', (error) => reject(new Error(`cannot run ${command}: ${error.message}`))),
  );
  let status = await Promise.race([waitForExit(child, timeoutMs), failed]);
  const exitedAt = performance.now();
  if (status === undefined) {
    child.kill('SIGKILL');
    status = (await waitForExit(child, STOP_GRACE_MS)) ?? 'SIGKILL';
  }
  // 'close' comes once stdout and stderr are drained, so the logs hold every line.
  await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, STOP_GRACE_MS))]);
  return {
    status,
    stdout: stdout.tail(MAX_LOGGED_LINES),
    stderr: stderr.tail(MAX_LOGGED_LINES),
    startedAt,
    exitedAt,
  };
}

let clockTicksPerSecond: number | undefined;

/** CPU time (user + system, every thread) a running process has used so far, from /proc (Linux). */
export function readCpuSeconds(pid: number): number {
  clockTicksPerSecond ??= readClockTicksPerSecond();
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may itself contain spaces and parentheses: the fields start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[STAT_UTIME_INDEX]) + Number(fields[STAT_STIME_INDEX]);
  if (!Number.isFinite(ticks)) throw new Error(`cannot read the CPU time of process ${pid}`);
  return ticks / clockTicksPerSecond;
}

/**
 * CPU time every process on the machine has used since boot, in seconds summed over the cores
 * (/proc/stat's first line: every field but idle and iowait, proc(5)): over a window, how many
 * cores were busy, whoever used them.
 */
export function readMachineCpuSeconds(): number {
  clockTicksPerSecond ??= readClockTicksPerSecond();
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
  const ticks = (user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0);
  if (!Number.isFinite(ticks)) throw new Error('cannot read /proc/stat');
  return ticks / clockTicksPerSecond;
}

/** VmRSS of a running process, in bytes (/proc/<pid>/status, Linux). */
export function readRssBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (match?.[1] === undefined) throw new Error(`cannot read the RSS of process ${pid}`);
  return Number(match[1]) * 1024;
}

function readClockTicksPerSecond(): number {
  try {
    const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isInteger(ticks) && ticks > 0 ? ticks : DEFAULT_CLOCK_TICKS_PER_SECOND;
  } catch {
    return DEFAULT_CLOCK_TICKS_PER_SECOND;
  }
}

/** The text lines a stream has written, kept so that a later wait can match an earlier line. */
export class LineLog {
  readonly lines: string[] = [];
  #partial = '';
  #waiters = new Set<() => void>();

  constructor(stream: Readable) {
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const parts = (this.#partial + chunk).split('\n');
      this.#partial = parts.pop() ?? '';
      for (const line of parts) if (this.lines.length < MAX_LOGGED_LINES) this.lines.push(line);
      for (const wake of this.#waiters) wake();
    });
  }

  /** The first line (seen so far or to come) matching `predicate`; rejects after `timeoutMs`. */
  waitFor(predicate: (line: string) => boolean, what: string, timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const line = this.lines.find(predicate);
        if (line === undefined) return;
        finish();
        resolve(line);
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }

  /** The last few lines, for an error message. */
  tail(count = 10): string {
    return [...this.lines.slice(-count), this.#partial].filter((line) => line !== '').join('\n');
  }
}

/**
 * A loopback port nobody listens on right now. Another process could take it before the caller
 * binds it; on a benchmark machine that race is accepted (mosquitto cannot report a port 0 bind).
 */
export function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}

/** Resolves once something accepts TCP connections on the loopback `port`; bounded by `timeoutMs`. */
export async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (performance.now() > deadline)
      throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, PORT_POLL_MS));
  }
}

/**
 * A crash test's child process: a TypeScript program, run through tsx from the repository root,
 * that reports on stdout what it has made durable, one line per report, and is killed with SIGKILL
 * once the test has seen enough. Only whole lines count: a report cut by the kill was never
 * complete. A child that exits by itself, or does not get far enough in time, fails the test.
 */
import { join } from 'node:path';
import { spawnChild } from './child-processes.ts';

const ROOT = join(import.meta.dirname, '..', '..');
/** What a child prints once it has opened what it works on (and holds its lock). */
const READY_LINE = 'ready';

export interface ReportingChildOptions {
  /** The program's arguments. */
  readonly args: readonly string[];
  readonly timeoutMs: number;
  /** Takes each whole line but the ready line; true once the child is to be killed. */
  readonly onLine: (line: string) => boolean;
  /** What the child has not done when time is up, for the error (`the child reported 3 of 20 appends`). */
  readonly unfinished: () => string;
  /**
   * Started at the ready line; the kill waits for it, so a check can run while the child holds
   * what it opened (killing it first would leave its lock stale). A rejection fails the run.
   */
  readonly whileReady?: (pid: number) => Promise<void>;
}

/** Runs `script` until `onLine` says enough (and `whileReady` is done), then kills it with SIGKILL. */
export function runUntilKilled(script: string, options: ReportingChildOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawnChild(process.execPath, ['--import', 'tsx', script, ...options.args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let pending = '';
    let stderr = '';
    let enough = false;
    let killed = false;
    let ready: Promise<void> | undefined = options.whileReady === undefined ? Promise.resolve() : undefined;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${options.unfinished()} in time; stderr: ${stderr}`));
    }, options.timeoutMs);
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        if (line !== READY_LINE) enough = options.onLine(line) || enough;
        else if (options.whileReady !== undefined) ready ??= options.whileReady(child.pid!);
      }
      if (!killed && enough && ready !== undefined) {
        killed = true;
        void ready
          .catch((error: unknown) => reject(error instanceof Error ? error : new Error(String(error))))
          .finally(() => child.kill('SIGKILL'));
      }
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL' && killed) resolve();
      else reject(new Error(`the child exited by itself (${code ?? signal}); stderr: ${stderr}`));
    });
  });
}

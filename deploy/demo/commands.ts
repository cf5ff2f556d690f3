/**
 * Runs the product's own commands the way an operator would type them, and keeps track of them:
 * when the demo is stopped (Ctrl-C, or SIGTERM to the demo alone), its commands stop with it.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');
/** A relay drains within a few seconds (relay/cli.ts bounds it at 10 s), an agent within 15 s. */
const STOP_BOUND_MS = 17_000;

type ProductCommand = 'dmz-pki' | 'dmz-relay' | 'dmz-agent';

const running = new Set<ChildProcess>();

export function binPath(command: ProductCommand): string {
  return join(ROOT, 'bin', `${command}.js`);
}

/** Runs a command to completion; returns stdout; throws with its stderr on a non-zero exit. */
export function run(command: ProductCommand, args: readonly string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      process.execPath,
      [binPath(command), ...args],
      { encoding: 'utf8' },
      (error, stdout, stderr) => {
        running.delete(child);
        if (error === null) resolve(stdout);
        else
          reject(new Error(`${command} ${args.join(' ')} failed: ${stderr === '' ? error.message : stderr}`));
      },
    );
    running.add(child);
    if (input !== undefined) child.stdin?.end(input);
  });
}

/**
 * Starts a long-running command. It gets a process group of its own, so a Ctrl-C at the terminal
 * reaches the demo only, which then stops it once (a second signal would cut its drain short).
 */
export function start(
  command: 'dmz-relay' | 'dmz-agent',
  args: readonly string[],
  logFile: string,
): ChildProcess {
  // Its log (JSON lines on stderr) goes to a file: the terminal shows what the demo says.
  const log = openSync(logFile, 'a');
  const child = spawn(process.execPath, [binPath(command), ...args], {
    stdio: ['ignore', log, log],
    detached: true,
  });
  closeSync(log);
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}

/** Sends SIGTERM to one command and waits for it to exit (SIGKILL past the bound). */
export function stopCommand(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve();
    }, STOP_BOUND_MS);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Sends SIGTERM to every command still running and waits for them, within a bound. */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map(stopCommand));
}

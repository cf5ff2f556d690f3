/** Runs the product's own commands the way an operator would type them. */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');

export function binPath(command: 'dmz-pki' | 'dmz-relay' | 'dmz-agent'): string {
  return join(ROOT, 'bin', `${command}.js`);
}

/** Runs a command to completion; returns stdout; throws with its stderr on a non-zero exit. */
export async function run(
  command: 'dmz-pki' | 'dmz-relay' | 'dmz-agent',
  args: readonly string[],
  input?: string,
): Promise<string> {
  const child = execFileAsync(process.execPath, [binPath(command), ...args], { encoding: 'utf8' });
  if (input !== undefined) {
    child.child.stdin?.end(input);
  }
  try {
    return (await child).stdout;
  } catch (error) {
    const failure = error as { stderr?: string; message: string };
    throw new Error(`${command} ${args.join(' ')} failed: ${failure.stderr ?? failure.message}`);
  }
}

/** Starts a long-running command, its stderr passed through with a prefix. */
export function start(command: 'dmz-relay', args: readonly string[]): ChildProcess {
  const child = spawn(process.execPath, [binPath(command), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  return child;
}

/**
 * `dmz-pki` for tests: in this process through runPkiCli (fast: no tsx start-up), or as a real
 * process of bin/dmz-pki.js (exit status, concurrency between processes). Either way with a clean
 * environment: no state directory or passphrase leaks in from the shell.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { runPkiCli } from '../../pki/cli.ts';
import { captureOutput } from './cli-output.ts';

const BIN = fileURLToPath(new URL('../../bin/dmz-pki.js', import.meta.url));

export interface PkiRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export async function runPki(args: readonly string[], env: Record<string, string> = {}): Promise<PkiRun> {
  const captured = captureOutput();
  const code = await runPkiCli(args, env, captured.output);
  return { code, stdout: captured.stdout(), stderr: captured.stderr() };
}

export function spawnPki(args: readonly string[], env: Record<string, string> = {}): Promise<PkiRun> {
  const baseEnv = { ...process.env };
  delete baseEnv.DMZ_STATE_DIR;
  delete baseEnv.DMZ_PKI_PASSPHRASE;
  delete baseEnv.DMZ_BACKUP_PASSPHRASE;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...baseEnv, ...env } }, (error, stdout, stderr) => {
      if (error !== null && typeof error.code !== 'number')
        reject(new Error('did not run', { cause: error }));
      else resolve({ code: error === null ? 0 : Number(error.code), stdout, stderr });
    });
  });
}

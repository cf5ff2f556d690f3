/**
 * The operating system's own tools that deploy tests drive (systemd-analyze, nft, unshare): where
 * they are, and running one to its end with its exit status, whatever that status is.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Where a system tool may be besides PATH: nft lives in /usr/sbin, which a user's PATH may lack. */
const SYSTEM_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
/** A tool that has not answered in this long is stuck; the test reports it rather than hang. */
const TOOL_TIMEOUT_MS = 30_000;
/** What a tool may print: these print kilobytes (a ruleset listing, a security report). */
const TOOL_OUTPUT_BYTES = 16 * 1024 * 1024;

/** The tool's absolute path, or undefined when it is not installed. */
export function findTool(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter((dir) => dir !== ''), ...SYSTEM_DIRS];
  for (const dir of dirs) {
    const path = join(dir, name);
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not here
    }
  }
  return undefined;
}

export interface ToolRun {
  /** The exit status; a tool killed by a signal or never started counts as 127. */
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a tool to its end without a shell; a non-zero exit is a result, not an exception. A tool
 * that takes minutes by design (testssl.sh) is given its own `timeoutMs`.
 */
export function runTool(
  file: string,
  args: readonly string[],
  options: { readonly timeoutMs?: number } = {},
): Promise<ToolRun> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { encoding: 'utf8', timeout: options.timeoutMs ?? TOOL_TIMEOUT_MS, maxBuffer: TOOL_OUTPUT_BYTES },
      (error, stdout, stderr) => {
        const code = (error as { code?: unknown } | null)?.code;
        resolve({ status: error === null ? 0 : typeof code === 'number' ? code : 127, stdout, stderr });
      },
    );
  });
}

/**
 * What a command run in-process (runAgentCli, runPkiCli, runRelayCli) wrote, kept in memory: pass
 * `output` to it, then read stdout() and stderr().
 */
import type { Output } from '../../relay/protocol/command-line.ts';

export interface CapturedOutput {
  readonly output: Output;
  stdout(): string;
  stderr(): string;
}

export function captureOutput(): CapturedOutput {
  let stdout = '';
  let stderr = '';
  return {
    output: {
      stdout: (data) => void (stdout += typeof data === 'string' ? data : Buffer.from(data).toString()),
      stderr: (text) => void (stderr += text),
    },
    stdout: () => stdout,
    stderr: () => stderr,
  };
}

/**
 * Two views of a lab host's TCP ports from the inside and the outside, without the product's code
 * in between: what listens on the host (`ss`, with the owning processes), and whether a TCP
 * connection from another host opens (bash's /dev/tcp, bounded by `timeout`).
 */
import { runTool } from '../../test/support/system-tools.ts';
import type { LabHost } from './zones.ts';

export interface ListeningSocket {
  readonly address: string;
  readonly port: number;
  /** The processes that own it. */
  readonly pids: readonly number[];
  /** ss's line, for evidence. */
  readonly line: string;
}

/** Every listening TCP socket on `host` (`ss -Hltnp` in its namespace). */
export async function listeningPorts(host: LabHost): Promise<ListeningSocket[]> {
  const run = await runTool('ip', ['netns', 'exec', host.namespace, 'ss', '-Hltnp']);
  if (run.status !== 0) throw new Error(`ss on ${host.zone}: ${run.stderr.trim()}`);
  return run.stdout
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      // State Recv-Q Send-Q Local:Port Peer:Port Process
      const local = line.trim().split(/\s+/)[3] ?? '';
      const separator = local.lastIndexOf(':');
      return {
        address: local.slice(0, separator),
        port: Number(local.slice(separator + 1)),
        pids: [...line.matchAll(/pid=(\d+)/g)].map((match) => Number(match[1])),
        line: line.trim(),
      };
    });
}

export type ConnectOutcome = 'connected' | 'refused' | 'timed out';

/**
 * Opens (and at once closes) a TCP connection from `from` to address:port. A dropped SYN (a
 * firewall's drop, on either end) times out; a refusal means the packet got there.
 */
export async function tryConnect(
  from: LabHost,
  address: string,
  port: number,
  timeoutSeconds: number,
): Promise<ConnectOutcome> {
  const run = await runTool('ip', [
    'netns',
    'exec',
    from.namespace,
    'timeout',
    String(timeoutSeconds),
    'bash',
    '-c',
    'exec 3<>"/dev/tcp/$0/$1"',
    address,
    String(port),
  ]);
  if (run.status === 0) return 'connected';
  // timeout(1) exits 124 when the command ran out of time.
  if (run.status === 124) return 'timed out';
  if (/refused/i.test(run.stderr)) return 'refused';
  throw new Error(`connecting from ${from.zone} to ${address}:${port}: ${run.stderr.trim()} (${run.status})`);
}

/**
 * What an auditor's port scan sees: nmap, a TCP SYN scan of all 65535 ports (`-p-`), with no host
 * discovery (`-Pn`: a host that drops every probe is still scanned, not skipped as down), run from
 * one lab host against another. Its greppable output (`-oG`) names every open port; the summary
 * line says how the others answered (filtered: dropped; closed: refused).
 */
import { runTool } from '../../test/support/system-tools.ts';
import type { LabHost } from './zones.ts';

/**
 * Probes per second. On a veth pair nothing is lost, so nmap's own pacing (for lossy networks)
 * would only make a scan of filtered ports take minutes; at this rate one takes about 7 s. One
 * retry per port (`--max-retries 1`) still covers a probe lost to a busy machine.
 */
const SCAN_RATE = 20_000;
/** A scan at that rate ends in well under a minute; `--host-timeout` makes nmap give up rather than hang. */
const SCAN_TIMEOUT = '120s';

export interface PortScan {
  readonly from: LabHost;
  readonly target: LabHost;
  /** Open TCP ports, ascending. */
  readonly open: readonly number[];
  /** Ports that answered with a reset: the firewall let the probe in, nothing listens. */
  readonly closed: readonly number[];
  /** How every other port answered, as nmap sums it up ("65534 filtered ports (no-response)"). */
  readonly others: string;
  /** nmap's report, as it prints it. */
  readonly report: string;
}

/** nmap's SYN scan from `from` to `target`, with `options` (which ports; a spoofed source). */
async function synScan(from: LabHost, target: LabHost, options: readonly string[]): Promise<string> {
  const args = [
    'netns',
    'exec',
    from.namespace,
    'nmap',
    '-Pn',
    '-sS',
    ...options,
    '-n',
    '--min-rate',
    String(SCAN_RATE),
    '--max-retries',
    '1',
    '--host-timeout',
    SCAN_TIMEOUT,
    '-oG',
    '-',
    target.address,
  ];
  const run = await runTool('ip', args);
  if (run.status !== 0) throw new Error(`nmap from ${from.zone} to ${target.zone}: ${run.stderr.trim()}`);
  return run.stdout;
}

async function ipOn(host: LabHost, args: readonly string[]): Promise<void> {
  const run = await runTool('ip', ['-n', host.namespace, ...args]);
  if (run.status !== 0) throw new Error(`ip ${args.join(' ')} on ${host.zone}: ${run.stderr.trim()}`);
}

/**
 * SYNs to `port` on `target` from `from` with another host's address as their source (`nmap -S`,
 * out of `from`'s interface): how a host in one zone would pass for one in another. The answers,
 * if any, go to the address's owner, so only the target's drop counts say what became of them.
 * `from` holds the address meanwhile (a /32 with no route), as nmap looks its route up from it.
 */
export async function sendSpoofedSyns(
  from: LabHost,
  source: LabHost,
  target: LabHost,
  port: number,
): Promise<void> {
  const held = [`${source.address}/32`, 'dev', from.interface];
  await ipOn(from, ['addr', 'add', ...held, 'noprefixroute']);
  try {
    await synScan(from, target, ['-S', source.address, '-e', from.interface, '-p', String(port)]);
  } finally {
    await ipOn(from, ['addr', 'del', ...held]);
  }
}

export async function scanAllPorts(from: LabHost, target: LabHost): Promise<PortScan> {
  const stdout = await synScan(from, target, ['-p-']);
  const hostLine = stdout.split('\n').find((line) => line.startsWith('Host:') && line.includes('Ports:'));
  if (hostLine === undefined) {
    throw new Error(`nmap from ${from.zone} to ${target.zone} reported no ports (timed out?):\n${stdout}`);
  }
  // "Ports: 8443/open/tcp//https-alt///, ...\tIgnored State: filtered (65534)"
  const ports = /Ports: ([^\t]*)/.exec(hostLine)?.[1] ?? '';
  const entries = ports
    .split(', ')
    .filter((entry) => entry !== '')
    .map((entry) => entry.split('/'));
  const inState = (state: string) =>
    entries
      .filter((fields) => fields[1] === state)
      .map((fields) => Number(fields[0]))
      .sort((a, b) => a - b);
  const listed = entries.map((fields) => `${fields[0]}/${fields[1]}`).join(', ');
  const ignored = /Ignored State: (\S+) \((\d+)\)/.exec(hostLine);
  const others = ignored === null ? '' : `${ignored[2]} ${ignored[1]}`;
  return {
    from,
    target,
    open: inState('open'),
    closed: inState('closed'),
    others,
    report: `nmap -Pn -sS -p- ${target.address} (${target.zone}) from ${from.zone}: ${listed === '' ? 'no port listed' : listed}${others === '' ? '' : `; the other ${others}`}`,
  };
}

/**
 * Each lab host's ruleset, the file from deploy/nftables as shipped with only its `define`s set to
 * the lab's addresses, loaded into the host's namespace with `nft -f`. A define the file no longer
 * has is an error: the lab must test the file an operator edits, not a copy of it.
 *
 * To show *where* a packet was stopped, the lab appends one rule to each base chain: a bare
 * `counter`, which matches everything that reached the chain's end, i.e. what the policy drops. It
 * changes no verdict.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runTool } from '../../test/support/system-tools.ts';
import { IT_HOST, NETWORKS, OT_HOST, RELAY_HOST, type LabHost } from './zones.ts';
import { LAB_PORTS } from './ports.ts';

const RULESETS_DIR = join(import.meta.dirname, '..', 'nftables');

export type BaseChain = 'input' | 'forward' | 'output';

export interface LabFirewall {
  readonly host: LabHost;
  readonly file: string;
  /** The table the file makes (`inet <name>`). */
  readonly table: string;
  readonly defines: Readonly<Record<string, string>>;
}

const relayPorts = {
  RELAY: RELAY_HOST.address,
  AGENT_PORT: String(LAB_PORTS.agent),
  ENROLLMENT_PORT: String(LAB_PORTS.enrollment),
};

export const FIREWALLS: readonly LabFirewall[] = [
  {
    host: RELAY_HOST,
    file: 'dmz-appliance.nft',
    table: 'dmz_relay',
    defines: {
      OT_NETS: `{ ${NETWORKS.ot} }`,
      IT_NETS: `{ ${NETWORKS.it} }`,
      AGENT_PORT: relayPorts.AGENT_PORT,
      ENROLLMENT_PORT: relayPorts.ENROLLMENT_PORT,
    },
  },
  {
    host: OT_HOST,
    file: 'ot-agent.nft',
    table: 'dmz_agent',
    defines: {
      ...relayPorts,
      DEVICE_NETS: `{ ${NETWORKS.devices} }`,
      DEVICE_TCP_PORTS: `{ ${LAB_PORTS.modbus} }`,
    },
  },
  {
    host: IT_HOST,
    file: 'it-agent.nft',
    table: 'dmz_agent',
    defines: { ...relayPorts, IT_NETS: `{ ${NETWORKS.it} }`, API_PORT: String(LAB_PORTS.api) },
  },
];

/** The ruleset's text with each `define NAME = ...` line replaced by the lab's value. */
export function fillDefines(text: string, file: string, defines: Readonly<Record<string, string>>): string {
  let filled = text;
  for (const [name, value] of Object.entries(defines)) {
    const line = new RegExp(`^define ${name} = .*$`, 'm');
    if (!line.test(filled)) throw new Error(`deploy/nftables/${file} has no "define ${name} = ..." line`);
    filled = filled.replace(line, `define ${name} = ${value}`);
  }
  return filled;
}

async function nft(namespace: string, args: readonly string[]): Promise<string> {
  const run = await runTool('ip', ['netns', 'exec', namespace, 'nft', ...args]);
  if (run.status !== 0) throw new Error(`nft ${args.join(' ')} in ${namespace}: ${run.stderr.trim()}`);
  return run.stdout;
}

/** Loads every host's ruleset into its namespace, then the policy counters. */
export async function applyFirewalls(workDir: string): Promise<void> {
  for (const firewall of FIREWALLS) {
    const text = await readFile(join(RULESETS_DIR, firewall.file), 'utf8');
    const path = join(workDir, `${firewall.host.zone}-${firewall.file}`);
    await writeFile(path, fillDefines(text, firewall.file, firewall.defines));
    await nft(firewall.host.namespace, ['-c', '-f', path]);
    await nft(firewall.host.namespace, ['-f', path]);
    for (const chain of ['input', 'forward', 'output'] as const) {
      await nft(firewall.host.namespace, ['add', 'rule', 'inet', firewall.table, chain, 'counter']);
    }
  }
}

/** Packets the chain's policy has dropped so far on `host` (the lab's trailing counter). */
export async function policyDrops(host: LabHost, chain: BaseChain): Promise<number> {
  const firewall = FIREWALLS.find((candidate) => candidate.host === host);
  if (firewall === undefined) throw new Error(`${host.zone} has no ruleset`);
  const listing = await nft(host.namespace, ['-j', 'list', 'chain', 'inet', firewall.table, chain]);
  const items = (JSON.parse(listing) as { nftables: { rule?: { expr: Record<string, unknown>[] } }[] })
    .nftables;
  const last = items.flatMap((item) => (item.rule === undefined ? [] : [item.rule])).at(-1);
  const counter =
    last?.expr.length === 1 ? (last.expr[0]?.counter as { packets: number } | undefined) : undefined;
  if (counter === undefined)
    throw new Error(`the lab's counter is not the last rule of ${host.zone} ${chain}`);
  return counter.packets;
}

/**
 * Each lab host's ruleset, the file from deploy/nftables as shipped with only its `define`s set to
 * the lab's addresses and interfaces, loaded into the host's namespace with `nft -f`. A define the
 * file no longer has is an error: the lab must test the file an operator edits, not a copy of it.
 * The appliance's enrollment set is opened and closed with the commands README gives the operator.
 *
 * To show *where* a packet was stopped, the lab appends one rule to each base chain: a bare
 * `counter`, which matches everything that reached the chain's end, i.e. what the policy drops. It
 * changes no verdict.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runTool } from '../../test/support/system-tools.ts';
import { IT_HOST, NETWORKS, OT_HOST, RELAY_HOST, RELAY_IT_LEG, type LabHost } from './zones.ts';
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
  AGENT_PORT: String(LAB_PORTS.agent),
  ENROLLMENT_PORT: String(LAB_PORTS.enrollment),
};

/** An interface name as a ruleset's `define` takes it: a quoted string. */
function interfaceName(host: LabHost): string {
  return `"${host.interface}"`;
}

/** The appliance's table and the set whose addresses may reach the enrollment port. */
const ENROLLMENT_SOURCES = ['inet', 'dmz_relay', 'enrollment_sources'] as const;

export const FIREWALLS: readonly LabFirewall[] = [
  {
    host: RELAY_HOST,
    file: 'dmz-appliance.nft',
    table: 'dmz_relay',
    defines: {
      OT_NETS: `{ ${NETWORKS.ot} }`,
      IT_NETS: `{ ${NETWORKS.it} }`,
      OT_IF: interfaceName(RELAY_HOST),
      IT_IF: interfaceName(RELAY_IT_LEG),
      ...relayPorts,
    },
  },
  {
    host: OT_HOST,
    file: 'ot-agent.nft',
    table: 'dmz_agent',
    defines: {
      RELAY: RELAY_HOST.address,
      ...relayPorts,
      DEVICE_NETS: `{ ${NETWORKS.devices} }`,
      DEVICE_TCP_PORTS: `{ ${LAB_PORTS.modbus} }`,
    },
  },
  {
    host: IT_HOST,
    file: 'it-agent.nft',
    table: 'dmz_agent',
    defines: {
      RELAY: RELAY_IT_LEG.address,
      ...relayPorts,
      IT_NETS: `{ ${NETWORKS.it} }`,
      IT_IF: interfaceName(IT_HOST),
      API_PORT: String(LAB_PORTS.api),
    },
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

/** The ruleset of `host`'s namespace (either leg of the relay). */
function firewallOf(host: LabHost): LabFirewall {
  const firewall = FIREWALLS.find((candidate) => candidate.host.namespace === host.namespace);
  if (firewall === undefined) throw new Error(`${host.zone} has no ruleset`);
  return firewall;
}

/** Checks and loads `firewall`'s file (its defines filled in), then the policy counters. */
async function loadFirewall(firewall: LabFirewall, workDir: string): Promise<void> {
  const text = await readFile(join(RULESETS_DIR, firewall.file), 'utf8');
  const path = join(workDir, `${firewall.host.zone}-${firewall.file}`);
  await writeFile(path, fillDefines(text, firewall.file, firewall.defines));
  await nft(firewall.host.namespace, ['-c', '-f', path]);
  await nft(firewall.host.namespace, ['-f', path]);
  for (const chain of ['input', 'forward', 'output'] as const) {
    await nft(firewall.host.namespace, ['add', 'rule', 'inet', firewall.table, chain, 'counter']);
  }
}

/** Loads every host's ruleset into its namespace, then the policy counters. */
export async function applyFirewalls(workDir: string): Promise<void> {
  for (const firewall of FIREWALLS) await loadFirewall(firewall, workDir);
}

/**
 * Loads `host`'s ruleset again, as a reboot or `systemctl reload nftables` would; its policy
 * counters start again from zero.
 */
export async function reloadFirewall(host: LabHost, workDir: string): Promise<void> {
  await loadFirewall(firewallOf(host), workDir);
}

/**
 * Opens the enrollment port at the appliance's firewall for one host, as README says: its address
 * in enrollment_sources, with a timeout (an nft duration: "1h", "5s").
 */
export async function openEnrollment(host: LabHost, timeout: string): Promise<void> {
  await nft(RELAY_HOST.namespace, [
    'add',
    'element',
    ...ENROLLMENT_SOURCES,
    `{ ${host.address} timeout ${timeout} }`,
  ]);
}

/** Closes the enrollment port at the appliance's firewall: enrollment_sources emptied. */
export async function closeEnrollment(): Promise<void> {
  await nft(RELAY_HOST.namespace, ['flush', 'set', ...ENROLLMENT_SOURCES]);
}

/** The addresses in enrollment_sources now (an expired element is gone). */
export async function enrollmentSources(): Promise<string[]> {
  const listing = await nft(RELAY_HOST.namespace, ['-j', 'list', 'set', ...ENROLLMENT_SOURCES]);
  const items = (JSON.parse(listing) as { nftables: { set?: { elem?: unknown[] } }[] }).nftables;
  const elements = items.find((item) => item.set !== undefined)?.set?.elem ?? [];
  return elements.map((element) => {
    const value = (element as { elem?: { val: unknown } }).elem?.val ?? element;
    const prefix = (value as { prefix?: { addr: string; len: number } }).prefix;
    return prefix === undefined ? String(value) : `${prefix.addr}/${prefix.len}`;
  });
}

/** Packets the chain's policy has dropped so far on `host` (the lab's trailing counter). */
export async function policyDrops(host: LabHost, chain: BaseChain): Promise<number> {
  const firewall = firewallOf(host);
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

/**
 * The lab's network: one network namespace per host, joined through a router namespace by veth
 * pairs, as a plant's three zones are joined by its firewalls' routing. The router forwards
 * everything: whatever keeps a zone closed in the lab is the hosts' own rulesets
 * (deploy/nftables), not the network. An IT workstation (`desk`) stands in the IT network, so the IT
 * agent's local API can be seen from where it is meant to be used.
 *
 * The DMZ appliance has two legs, as a relay between two firewalls has: OT hosts reach it on one
 * link and address, IT hosts on another, so its ruleset can tell by the interface which network a
 * packet came from.
 *
 * The addresses are private (RFC 1918) and exist only inside these namespaces; they differ from the
 * rulesets' shipped defaults, so a ruleset whose `define`s were not filled in shows at once.
 */
import { spawnSync } from 'node:child_process';
import { runTool } from '../../test/support/system-tools.ts';

/** Every namespace the lab makes starts with this, so a later run can find what a killed one left. */
export const NAMESPACE_PREFIX = 'dmzlab-';

export const ROUTER = `${NAMESPACE_PREFIX}router`;

export interface LabHost {
  /** The zone's name in evidence and in the namespace's name. */
  readonly zone: 'ot' | 'dmz' | 'it' | 'desk';
  readonly namespace: string;
  readonly address: string;
  /** The router's address on this host's link: the host's default gateway. */
  readonly gateway: string;
  /** The link's prefix length. */
  readonly prefix: number;
  /** The host's end of the link: the interface what comes from the router arrives on. */
  readonly interface: string;
  /** The router's end of the link. */
  readonly routerEnd: string;
}

function host(zone: LabHost['zone'], address: string, gateway: string): LabHost {
  return {
    zone,
    namespace: `${NAMESPACE_PREFIX}${zone}`,
    address,
    gateway,
    prefix: 24,
    interface: 'eth0',
    routerEnd: `r-${zone}`,
  };
}

/** The OT agent host; its Modbus device listens on the same host, on the device network. */
export const OT_HOST = host('ot', '10.71.1.10', '10.71.1.1');
/** The DMZ appliance that runs dmz-relay, on its leg toward OT (which has its default route). */
export const RELAY_HOST = host('dmz', '10.72.0.5', '10.72.0.1');
/** The appliance's leg toward IT: its own link, address and interface, the one IT hosts reach. */
export const RELAY_IT_LEG: LabHost = {
  ...host('dmz', '10.72.1.5', '10.72.1.1'),
  interface: 'eth1',
  routerEnd: 'r-dmz-it',
};
/** The IT agent host. */
export const IT_HOST = host('it', '10.73.1.10', '10.73.1.1');
/** An IT workstation on another IT subnet: a user of the IT agent's local API. */
export const DESK_HOST = host('desk', '10.73.2.20', '10.73.2.1');
export const HOSTS = [OT_HOST, RELAY_HOST, IT_HOST, DESK_HOST] as const;

/** The relay as `host` reaches it: the OT host on the OT leg, the IT zone's hosts on the IT leg. */
export function relayLegFor(host: LabHost): LabHost {
  return host === OT_HOST ? RELAY_HOST : RELAY_IT_LEG;
}

/** The networks the rulesets name (their `define`s). */
export const NETWORKS = {
  ot: '10.71.0.0/16',
  devices: '10.71.1.0/24',
  it: '10.73.0.0/16',
} as const;

async function ip(args: readonly string[]): Promise<void> {
  const run = await runTool('ip', args);
  if (run.status !== 0) throw new Error(`ip ${args.join(' ')} failed: ${run.stderr.trim()}`);
}

/** The lab's namespaces that exist now (a run in progress, or what a killed run left). */
export function labNamespaces(): string[] {
  const listed = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  return listed.stdout
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name.startsWith(NAMESPACE_PREFIX));
}

async function sysctl(namespace: string, setting: string): Promise<void> {
  const run = await runTool('ip', ['netns', 'exec', namespace, 'sysctl', '-qw', setting]);
  if (run.status !== 0) throw new Error(`sysctl ${setting} in ${namespace}: ${run.stderr.trim()}`);
}

/** The veth pair from the router to `lab`'s namespace, addressed and up. */
async function link(lab: LabHost): Promise<void> {
  await ip([
    'link',
    'add',
    lab.routerEnd,
    'netns',
    ROUTER,
    'type',
    'veth',
    'peer',
    'name',
    lab.interface,
    'netns',
    lab.namespace,
  ]);
  await ip(['-n', ROUTER, 'addr', 'add', `${lab.gateway}/${lab.prefix}`, 'dev', lab.routerEnd]);
  await ip(['-n', ROUTER, 'link', 'set', lab.routerEnd, 'up']);
  await ip(['-n', lab.namespace, 'addr', 'add', `${lab.address}/${lab.prefix}`, 'dev', lab.interface]);
  await ip(['-n', lab.namespace, 'link', 'set', lab.interface, 'up']);
}

/** Makes the namespaces, links and routes; the router forwards between the zones. */
export async function buildZones(): Promise<void> {
  await ip(['netns', 'add', ROUTER]);
  await ip(['-n', ROUTER, 'link', 'set', 'lo', 'up']);
  // The router checks no source (no reverse path filter, whatever the host's default): it
  // forwards everything, a spoofed source too, so the hosts' rulesets are all that stands.
  for (const scope of ['all', 'default']) await sysctl(ROUTER, `net.ipv4.conf.${scope}.rp_filter=0`);
  for (const lab of HOSTS) {
    await ip(['netns', 'add', lab.namespace]);
    await link(lab);
    await ip(['-n', lab.namespace, 'link', 'set', 'lo', 'up']);
    await ip(['-n', lab.namespace, 'route', 'add', 'default', 'via', lab.gateway]);
  }
  await link(RELAY_IT_LEG);
  await ip(['-n', RELAY_IT_LEG.namespace, 'route', 'add', NETWORKS.it, 'via', RELAY_IT_LEG.gateway]);
  // Loose reverse path filtering, as systemd sets it on Debian (50-default.conf): an OT source
  // arriving on the IT leg passes it (OT is routed, by the other leg), so only the ruleset's
  // interface check stops it, as on an appliance. Strict mode would stop it first and hide that.
  await sysctl(RELAY_HOST.namespace, 'net.ipv4.conf.all.rp_filter=2');
  await sysctl(ROUTER, 'net.ipv4.ip_forward=1');
}

/**
 * Ends every process in the lab's namespaces (SIGKILL, by pid: each one the lab started, in a
 * namespace only the lab uses), then removes the namespaces and with them every link. Synchronous,
 * so that a signal handler can run it to the end.
 */
export function removeZones(): void {
  for (const namespace of labNamespaces()) {
    const pids = spawnSync('ip', ['netns', 'pids', namespace], { encoding: 'utf8' });
    for (const pid of pids.stdout.split('\n').filter((line) => /^\d+$/.test(line))) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone already
      }
    }
    spawnSync('ip', ['netns', 'del', namespace]);
  }
}

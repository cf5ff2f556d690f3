/**
 * The lab's network: one network namespace per host, joined through a router namespace by veth
 * pairs, as a plant's three zones are joined by its firewalls' routing. The router forwards
 * everything: whatever keeps a zone closed in the lab is the hosts' own rulesets
 * (deploy/nftables), not the network. An IT workstation (`desk`) stands in the IT network, so the IT
 * agent's local API can be seen from where it is meant to be used.
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
}

function host(zone: LabHost['zone'], address: string, gateway: string): LabHost {
  return { zone, namespace: `${NAMESPACE_PREFIX}${zone}`, address, gateway, prefix: 24 };
}

/** The OT agent host; its Modbus device listens on the same host, on the device network. */
export const OT_HOST = host('ot', '10.71.1.10', '10.71.1.1');
/** The DMZ appliance that runs dmz-relay. */
export const RELAY_HOST = host('dmz', '10.72.0.5', '10.72.0.1');
/** The IT agent host. */
export const IT_HOST = host('it', '10.73.1.10', '10.73.1.1');
/** An IT workstation on another IT subnet: a user of the IT agent's local API. */
export const DESK_HOST = host('desk', '10.73.2.20', '10.73.2.1');
export const HOSTS = [OT_HOST, RELAY_HOST, IT_HOST, DESK_HOST] as const;

/** The networks the rulesets name (their `define`s). */
export const NETWORKS = {
  ot: '10.71.0.0/16',
  devices: '10.71.1.0/24',
  it: '10.73.0.0/16',
} as const;

/** The interface each host sees (the router's end is named after the zone). */
const HOST_INTERFACE = 'eth0';

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

/** Makes the namespaces, links and routes; the router forwards between the zones. */
export async function buildZones(): Promise<void> {
  await ip(['netns', 'add', ROUTER]);
  await ip(['-n', ROUTER, 'link', 'set', 'lo', 'up']);
  for (const lab of HOSTS) {
    const routerEnd = `r-${lab.zone}`;
    await ip(['netns', 'add', lab.namespace]);
    await ip([
      'link',
      'add',
      routerEnd,
      'netns',
      ROUTER,
      'type',
      'veth',
      'peer',
      'name',
      HOST_INTERFACE,
      'netns',
      lab.namespace,
    ]);
    await ip(['-n', ROUTER, 'addr', 'add', `${lab.gateway}/${lab.prefix}`, 'dev', routerEnd]);
    await ip(['-n', ROUTER, 'link', 'set', routerEnd, 'up']);
    await ip(['-n', lab.namespace, 'addr', 'add', `${lab.address}/${lab.prefix}`, 'dev', HOST_INTERFACE]);
    await ip(['-n', lab.namespace, 'link', 'set', HOST_INTERFACE, 'up']);
    await ip(['-n', lab.namespace, 'link', 'set', 'lo', 'up']);
    await ip(['-n', lab.namespace, 'route', 'add', 'default', 'via', lab.gateway]);
  }
  const forwarding = await runTool('ip', ['netns', 'exec', ROUTER, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  if (forwarding.status !== 0) throw new Error(`the router cannot forward: ${forwarding.stderr.trim()}`);
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

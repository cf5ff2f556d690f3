/**
 * deploy/nftables: every ruleset parses (`nft -c -f`), and, loaded into a network namespace of the
 * test's own (`unshare --user --map-root-user --net`: the host's firewall is never touched), opens
 * exactly what issue 10 says for its host, with every base chain's policy drop, and loads twice
 * without doubling (the file replaces its own table). Skips, saying why, when nft is missing or
 * no namespace can be made.
 */
import assert from 'node:assert/strict';
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { findTool, runTool } from '../support/system-tools.ts';

const RULESETS_DIR = join(import.meta.dirname, '..', '..', 'deploy', 'nftables');

/**
 * What each ruleset accepts, with the addresses at the top of the file as shipped: every accept
 * rule of each base chain, in order, as nft lists it. Anything else is dropped by the policy.
 */
const RULESETS = [
  {
    file: 'dmz-appliance.nft',
    accepts: {
      // Inbound only the agent port from OT and IT, and the enrollment port from the hosts in
      // enrollment_sources; each network only on its own interface.
      input: [
        'iif lo',
        'ct state established,related',
        'iifname ens19 ip saddr 10.10.0.0/16 tcp dport 8443 ct state new',
        'iifname ens20 ip saddr 10.30.0.0/16 tcp dport 8443 ct state new',
        'iifname ens19 ip saddr 10.10.0.0/16 ip saddr @enrollment_sources tcp dport 8444 ct state new',
        'iifname ens20 ip saddr 10.30.0.0/16 ip saddr @enrollment_sources tcp dport 8444 ct state new',
      ],
      forward: [],
      // Nothing outbound but replies: the relay never connects out.
      output: ['oif lo', 'ct state established,related'],
    },
  },
  {
    file: 'ot-agent.nft',
    accepts: {
      // No inbound at all.
      input: ['iif lo', 'ct state established,related'],
      forward: [],
      // Outbound only to the relay and to its own devices.
      output: [
        'oif lo',
        'ct state established,related',
        'ip daddr 10.20.0.5 tcp dport {8443, 8444} ct state new',
        'ip daddr 10.10.1.0/24 tcp dport {502, 1883, 4840, 8883} ct state new',
      ],
    },
  },
  {
    file: 'it-agent.nft',
    accepts: {
      // Inbound only the local API, from the IT network on its interface.
      input: [
        'iif lo',
        'ct state established,related',
        'iifname ens18 ip saddr 10.30.0.0/16 tcp dport 8080 ct state new',
      ],
      forward: [],
      output: [
        'oif lo',
        'ct state established,related',
        'ip daddr 10.20.0.5 tcp dport {8443, 8444} ct state new',
        'ip daddr 10.30.0.0/16 ct state new',
      ],
    },
  },
] as const;

interface NftRule {
  readonly chain: string;
  readonly expr: readonly Record<string, unknown>[];
}
interface NftChain {
  readonly name: string;
  readonly hook?: string;
  readonly policy?: string;
}

/** One side of a match as nft's listing writes it (`ip saddr`, `tcp dport`, `ct state`, `iif`). */
function describeOperand(value: unknown): string {
  if (typeof value === 'string' || typeof value === 'number') return String(value);
  if (Array.isArray(value)) return value.map(describeOperand).join(',');
  const object = value as Record<string, Record<string, unknown>>;
  if (object.payload !== undefined)
    return `${String(object.payload.protocol)} ${String(object.payload.field)}`;
  if (object.meta !== undefined) return String(object.meta.key);
  if (object.ct !== undefined) return `ct ${String(object.ct.key)}`;
  if (object.prefix !== undefined) return `${String(object.prefix.addr)}/${String(object.prefix.len)}`;
  if (object.set !== undefined) {
    const members = (object.set as unknown as unknown[])
      .map(describeOperand)
      .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
    return `{${members.join(', ')}}`;
  }
  return JSON.stringify(value);
}

/** Each base chain's policy and its accept rules, from `nft -j list ruleset`. */
function summarise(json: string): Record<string, { policy: string; accepts: string[] }> {
  const items = (JSON.parse(json) as { nftables: Record<string, unknown>[] }).nftables;
  const chains: Record<string, { policy: string; accepts: string[] }> = {};
  for (const item of items) {
    const chain = item.chain as NftChain | undefined;
    if (chain?.hook !== undefined) chains[chain.name] = { policy: chain.policy ?? 'accept', accepts: [] };
  }
  for (const item of items) {
    const rule = item.rule as NftRule | undefined;
    if (rule === undefined || !rule.expr.some((step) => 'accept' in step)) continue;
    const matches = rule.expr.flatMap((step) => {
      const match = step.match as { left: unknown; right: unknown } | undefined;
      return match === undefined ? [] : [`${describeOperand(match.left)} ${describeOperand(match.right)}`];
    });
    chains[rule.chain]?.accepts.push(matches.join(' '));
  }
  return chains;
}

interface SetElement {
  readonly address: string;
  readonly timeoutSeconds?: number;
  readonly expiresSeconds?: number;
}

/**
 * A set's elements from `nft -j list set`: a plain one is its address (or prefix), one that
 * expires an object with its own timeout, if it was given one, and the seconds left.
 */
function setElements(json: string): SetElement[] {
  const items = (JSON.parse(json) as { nftables: { set?: { elem?: unknown[] } }[] }).nftables;
  const elements = items.find((item) => item.set !== undefined)?.set?.elem ?? [];
  return elements.map((element) => {
    const timed = (element as { elem?: { val: unknown; timeout?: number; expires?: number } }).elem;
    if (timed === undefined) return { address: describeOperand(element) };
    return {
      address: describeOperand(timed.val),
      ...(timed.timeout === undefined ? {} : { timeoutSeconds: timed.timeout }),
      ...(timed.expires === undefined ? {} : { expiresSeconds: timed.expires }),
    };
  });
}

/** dmz-appliance.nft's `timeout 1h` on enrollment_sources: what an element given none gets. */
const SET_TIMEOUT_SECONDS = 3600;
/** The timeout of the host the expiry case adds: short, so the case waits it out. */
const EXPIRY_SECONDS = 2;
/** An element past its timeout is gone at the next lookup; this long after, the case fails. */
const EXPIRY_BOUND_SECONDS = 10;

const NFT = findTool('nft');
const UNSHARE = findTool('unshare');
/** A user and network namespace of the test's own: nft there changes nothing on the host. */
const IN_NAMESPACE = ['--user', '--map-root-user', '--net'];

/** Why the namespace cases cannot run here, or undefined when they can. */
async function namespaceProblem(): Promise<string | undefined> {
  if (NFT === undefined) return 'nft is not installed (Debian: apt-get install nftables)';
  if (UNSHARE === undefined) return 'unshare is not installed (Debian: util-linux)';
  const probe = await runTool(UNSHARE, [...IN_NAMESPACE, NFT, 'list', 'ruleset']);
  if (probe.status !== 0) {
    return `cannot run nft in a user and network namespace here (needs user namespaces): ${probe.stderr.trim()}`;
  }
  return undefined;
}

const problem = await namespaceProblem();

describe('deploy - nftables rulesets', { skip: problem ?? false }, () => {
  const nft = NFT!;
  const unshare = UNSHARE!;
  let dir = '';

  /**
   * Runs a shell script in one fresh namespace, `nft` in it being the test's nft; returns what it
   * printed. The paths in the script are the test's own.
   */
  async function shellInNamespace(lines: readonly string[]): Promise<string> {
    // sh -c SCRIPT NFT: the script calls nft through a function of that name, which runs "$0".
    const script = ['set -e', 'NFT="$0"', 'nft() { "$NFT" "$@"; }', ...lines].join('\n');
    const run = await runTool(unshare, [...IN_NAMESPACE, 'sh', '-c', script, nft]);
    assert.equal(run.status, 0, run.stderr);
    return run.stdout;
  }

  /** Runs nft commands one after the other in one fresh namespace; returns what they printed. */
  function inNamespace(commands: readonly string[]): Promise<string> {
    return shellInNamespace(commands.map((command) => `nft ${command}`));
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dmz-nft-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const { file, accepts } of RULESETS) {
    const path = join(RULESETS_DIR, file);

    it(`${file} parses (nft -c -f)`, async () => {
      const run = await runTool(unshare, [...IN_NAMESPACE, nft, '-c', '-f', path]);
      assert.equal(run.status, 0, `nft -c -f ${file}:\n${run.stderr}`);
    });

    it(`${file} opens only what its host needs, every policy drop`, async () => {
      const chains = summarise(await inNamespace([`-f '${path}'`, '-j list ruleset']));
      assert.deepEqual(Object.keys(chains).sort(), ['forward', 'input', 'output']);
      for (const [name, chain] of Object.entries(chains)) {
        assert.equal(chain.policy, 'drop', `${name} policy`);
        assert.deepEqual(chain.accepts, accepts[name as keyof typeof accepts], `${name} accepts`);
      }
    });

    it(`${file} loads again over itself without doubling its rules`, async () => {
      const once = await inNamespace([`-f '${path}'`, 'list ruleset']);
      const twice = await inNamespace([`-f '${path}'`, `-f '${path}'`, 'list ruleset']);
      assert.equal(twice, once);
    });
  }

  describe('dmz-appliance.nft: enrollment_sources', () => {
    const appliance = join(RULESETS_DIR, 'dmz-appliance.nft');
    const set = 'inet dmz_relay enrollment_sources';
    const host = '10.10.5.7';

    it('is empty after a load: the enrollment port is closed at the firewall, at boot too', async () => {
      const elements = setElements(await inNamespace([`-f '${appliance}'`, `-j list set ${set}`]));
      assert.deepEqual(elements, []);
    });

    it("an element added without a timeout still expires, within the set's hour", async () => {
      const listing = await inNamespace([
        `-f '${appliance}'`,
        `add element ${set} '{ ${host} }'`,
        `-j list set ${set}`,
      ]);
      const [element, ...others] = setElements(listing);
      assert.deepEqual(others, []);
      assert.equal(element?.address, host);
      assert.ok(
        element.expiresSeconds !== undefined &&
          element.expiresSeconds > 0 &&
          element.expiresSeconds <= SET_TIMEOUT_SECONDS,
        `expires in ${String(element.expiresSeconds)} s`,
      );
    });

    it('one host added with a timeout is the only element, and leaves the set when it expires', async () => {
      const printed = await shellInNamespace([
        `nft -f '${appliance}'`,
        `nft add element ${set} '{ ${host} timeout ${EXPIRY_SECONDS}s }'`,
        'added=$(date +%s%N)',
        `nft -j list set ${set}`,
        `while nft get element ${set} '{ ${host} }' >/dev/null 2>&1; do`,
        `  [ $(( $(date +%s%N) - added )) -lt ${EXPIRY_BOUND_SECONDS * 1_000_000_000} ] || { echo 'still in the set after ${EXPIRY_BOUND_SECONDS} s' >&2; exit 1; }`,
        '  sleep 0.1',
        'done',
        'echo "left after $(( ($(date +%s%N) - added) / 1000000 )) ms"',
        `nft -j list set ${set}`,
      ]);
      const [added, left, after] = printed.trim().split('\n');
      const [element, ...others] = setElements(added ?? '');
      assert.deepEqual(others, []);
      assert.equal(element?.address, host);
      assert.equal(element.timeoutSeconds, EXPIRY_SECONDS);
      // It expired: it was there for (about) its timeout, not refused or removed at once.
      const leftAfterMs = Number(/left after (\d+) ms/.exec(left ?? '')?.[1]);
      assert.ok(leftAfterMs >= (EXPIRY_SECONDS - 1) * 1000, `left after ${leftAfterMs} ms`);
      assert.deepEqual(setElements(after ?? ''), []);
    });
  });

  it('a ruleset with a syntax error fails the check (the check is real)', async () => {
    const broken = join(dir, 'broken.nft');
    await writeFile(broken, 'table inet t {\n\tchain input {\n\t\ttcp dport 22 acept\n\t}\n}\n');
    const run = await runTool(unshare, [...IN_NAMESPACE, nft, '-c', '-f', broken]);
    assert.notEqual(run.status, 0);
    assert.match(run.stderr, /syntax error/);
  });
});

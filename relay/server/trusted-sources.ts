/**
 * Source networks the operator vouches for (the OT and IT firewalls' NAT addresses), each with a
 * budget of its own for what the relay lets one address do before authentication. A plant whose
 * agents all come from one NAT address would otherwise share one stranger's budget and need many
 * minutes to reconnect after a relay restart; unknown sources keep the strict default.
 */
import { BlockList, isIP } from 'node:net';

export interface SourceBudget {
  /** TCP connections one address may open per minute. */
  readonly connectionAttemptsPerMinute: number;
  /** TLS handshakes one address may have in progress (or waiting) at once. */
  readonly handshakesInProgressPerAddress: number;
}

export interface TrustedSource extends SourceBudget {
  /** `address/prefix`, IPv4 or IPv6 (`192.0.2.10/32`, `2001:db8:7::/48`). */
  readonly network: string;
}

/** An IPv4 address as a dual-stack socket reports it (`::ffff:192.0.2.10`). */
const IPV4_MAPPED = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i;

/** The budget of `address`: the first trusted network that holds it, or the default. */
export class SourceBudgets {
  readonly #trusted: readonly { readonly networks: BlockList; readonly budget: SourceBudget }[];
  readonly #default: SourceBudget;

  constructor(fallback: SourceBudget, trusted: readonly TrustedSource[]) {
    this.#default = fallback;
    this.#trusted = trusted.map((source) => {
      const networks = new BlockList();
      const parsed = parseNetwork(source.network);
      if (parsed === undefined) throw new Error(`not a network: ${source.network}`);
      networks.addSubnet(parsed.address, parsed.prefix, parsed.family);
      return { networks, budget: source };
    });
  }

  /** Every distinct budget, the default first: one rate limiter each. */
  get all(): readonly SourceBudget[] {
    return [this.#default, ...this.#trusted.map((source) => source.budget)];
  }

  budgetOf(address: string): SourceBudget {
    const plain = IPV4_MAPPED.exec(address)?.[1] ?? address;
    const family = isIP(plain) === 6 ? 'ipv6' : 'ipv4';
    if (isIP(plain) === 0) return this.#default;
    return this.#trusted.find((source) => source.networks.check(plain, family))?.budget ?? this.#default;
  }
}

/** `address/prefix` with a prefix that fits the family; undefined otherwise. */
export function parseNetwork(
  network: string,
): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  const [address, prefixText, ...rest] = network.split('/');
  if (address === undefined || prefixText === undefined || rest.length > 0) return undefined;
  const version = isIP(address);
  if (version === 0 || !/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  if (prefix > (version === 4 ? 32 : 128)) return undefined;
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

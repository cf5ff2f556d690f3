/**
 * How a fleet worker's agents reach the relay, so that a few processes can stand in for thousands
 * of agents on their own machines without becoming the bound themselves:
 *
 * - Source addresses: the connections are spread over many loopback addresses (127.0.1.1,
 *   127.0.1.2, ...), as a fleet behind several NAT addresses would arrive. The relay's pre-TLS gate
 *   bounds handshakes per source address; with every agent on 127.0.0.1 the fleet would meet that
 *   bound instead of the relay's own pace.
 * - One TLS context per agent: RelayLink hands its PEM strings to ws, and Node builds a fresh
 *   secure context from them on every connection attempt (about 0.9 ms of CPU here, mostly parsing
 *   the RSA key). A real agent pays that on its own CPU; ten thousand of them retrying in two
 *   processes would pay it on the relay's machine, and the storm would measure the emulator.
 *
 * RelayLink takes no secure context (and the fleet's agents are given no local address), so this
 * fills both into the options that ws hands to `tls.connect` (ws calls it through the module object), for
 * connections to the fleet's server port only, and only in the benchmark's fleet workers. mqtt.js
 * and nats.js call `tls.connect` too and get the same (nats.js dials its plain socket first, so
 * its connections keep 127.0.0.1: nats-server has no bound per source address).
 */
import tls from 'node:tls';

/** The first `count` addresses of 127.0.1.0/24 upward (count <= 65,000). */
export function loopbackSourceAddresses(count: number): string[] {
  return Array.from({ length: count }, (_, index) => {
    const host = index + 257; // 127.0.1.1 first
    return `127.0.${Math.floor(host / 256)}.${host % 256}`;
  });
}

interface ConnectOptions {
  port?: number | string;
  /** nats.js upgrades the plain socket it read the server's INFO on. */
  socket?: { remotePort?: number };
  localAddress?: string;
  secureContext?: tls.SecureContext;
  cert?: unknown;
}

let installed: { port: number; addresses: readonly string[] } | undefined;
let nextAddress = 0;
/** By certificate PEM: one agent, one context, for every attempt it makes. */
const contexts = new Map<string, tls.SecureContext>();

export function installFleetTls(port: number, addresses: readonly string[]): void {
  if (installed === undefined) {
    const original = tls.connect.bind(tls) as (...parameters: unknown[]) => tls.TLSSocket;
    tls.connect = (...args: unknown[]) => {
      const options = args[0] as ConnectOptions | null;
      const fleet = installed;
      const target =
        typeof options === 'object' && options !== null
          ? Number(options.port ?? options.socket?.remotePort)
          : 0;
      if (fleet !== undefined && options !== null && target === fleet.port) {
        if (
          options.socket === undefined &&
          options.localAddress === undefined &&
          fleet.addresses.length > 0
        ) {
          options.localAddress = fleet.addresses[nextAddress++ % fleet.addresses.length]!;
        }
        if (options.secureContext === undefined && typeof options.cert === 'string') {
          let context = contexts.get(options.cert);
          if (context === undefined) {
            context = tls.createSecureContext(options as tls.SecureContextOptions);
            contexts.set(options.cert, context);
          }
          options.secureContext = context;
        }
      }
      return original(...args);
    };
  }
  installed = { port, addresses };
}

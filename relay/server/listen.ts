/**
 * Opening a listener's port, with a failure an operator can act on: which listener, which address
 * and which configuration key, what the system said, and what to do. `EADDRINUSE` alone names none
 * of them.
 */
import type { FastifyInstance } from 'fastify';
import { DmzError } from '../protocol/errors.ts';

export const LISTENERS = {
  agents: 'agent',
  enrollment: 'enrollment',
  admin: 'admin',
} as const;
export type ListenerName = keyof typeof LISTENERS;

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/** Lowest port an unprivileged process may bind on Linux (net.ipv4.ip_unprivileged_port_start). */
const FIRST_UNPRIVILEGED_PORT = 1024;

export async function listenOn(
  name: ListenerName,
  app: Pick<FastifyInstance, 'listen'>,
  address: ListenAddress,
): Promise<void> {
  try {
    await app.listen({ host: address.host, port: address.port });
  } catch (cause) {
    throw listenError(name, address, cause);
  }
}

export function listenError(name: ListenerName, address: ListenAddress, cause: unknown): DmzError {
  const { host, port } = address;
  const key = `listen.${name}`;
  const where = `the ${LISTENERS[name]} listener cannot listen on ${formatAddress(address)} (${key})`;
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  const [reason, hint] = ((): [string, string] => {
    switch (code) {
      case 'EADDRINUSE':
        return [
          'the port is in use',
          `stop what holds it (ss -ltnp 'sport = :${port}') or choose another ${key}.port`,
        ];
      case 'EACCES':
        return [
          'permission denied',
          port < FIRST_UNPRIVILEGED_PORT
            ? `ports below ${FIRST_UNPRIVILEGED_PORT} need CAP_NET_BIND_SERVICE: choose another ${key}.port or grant it (AmbientCapabilities= in the systemd unit)`
            : `choose another ${key}.port`,
        ];
      case 'EADDRNOTAVAIL':
        return [
          `no interface of this host has the address ${host}`,
          `set ${key}.host to an address of this host (ip -brief address)`,
        ];
      case 'ENOTFOUND':
      case 'EAI_AGAIN':
        return [`the host name ${host} does not resolve`, `set ${key}.host to an address of this host`];
      case undefined:
      default:
        return [code ?? (cause instanceof Error ? cause.message : String(cause)), `check ${key}`];
    }
  })();
  return new DmzError('RELAY_ERR_LISTEN', `${where}: ${reason}`, { cause, hint });
}

function formatAddress({ host, port }: ListenAddress): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

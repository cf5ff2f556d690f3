/**
 * Part of the relay configuration's validation: no two listeners on one port of one address. The
 * second would fail to bind at start (or, for enrollment in `auto` mode, only when the first token
 * is created); the agent and enrollment ports in particular must differ, since one speaks mutual
 * TLS and the other server-only TLS.
 */
import { isIP } from 'node:net';
import type { ConfigIssue } from '../protocol/errors.ts';

interface Listen {
  readonly host: string;
  readonly port: number;
}

export interface ListenSection {
  readonly agents: Listen;
  readonly enrollment: Listen & { readonly mode: 'auto' | 'on' | 'off' };
  readonly admin: Listen;
}

const WILDCARDS: ReadonlySet<string> = new Set(['0.0.0.0', '::', '']);
const LOOPBACK_NAMES: ReadonlySet<string> = new Set(['localhost', '127.0.0.1', '::1']);

export function checkListenerPorts(listen: ListenSection): ConfigIssue[] {
  const listeners: [name: keyof ListenSection, address: Listen][] = [
    ['agents', listen.agents],
    ['admin', listen.admin],
  ];
  // An enrollment listener that never opens takes no port.
  if (listen.enrollment.mode !== 'off') listeners.splice(1, 0, ['enrollment', listen.enrollment]);
  const issues: ConfigIssue[] = [];
  listeners.forEach(([name, address], index) => {
    const earlier = listeners.slice(0, index).find(([, other]) => sharesPort(address, other));
    if (earlier === undefined) return;
    issues.push({
      path: `/listen/${name}/port`,
      message: `must differ from listen.${earlier[0]}.port (both ${address.port} on overlapping addresses)`,
    });
  });
  return issues;
}

/** Port 0 picks a free port for each listener, so it never clashes. */
function sharesPort(a: Listen, b: Listen): boolean {
  return a.port !== 0 && a.port === b.port && overlaps(a.host, b.host);
}

function overlaps(a: string, b: string): boolean {
  if (a === b || WILDCARDS.has(a) || WILDCARDS.has(b)) return true;
  // `localhost` may be either loopback address; two distinct IP addresses never overlap.
  if (a === 'localhost' || b === 'localhost') return LOOPBACK_NAMES.has(a) && LOOPBACK_NAMES.has(b);
  return isIP(a) === 0 || isIP(b) === 0;
}

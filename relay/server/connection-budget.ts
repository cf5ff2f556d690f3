/**
 * How many connections the relay lets strangers hold, given its file-descriptor limit. Every TCP
 * connection is a descriptor; authenticated agents need theirs whatever strangers do, so the
 * unauthenticated side (handshakes on the agent port and their queue, the enrollment port) gets
 * fixed shares of the limit, and the rest stays in reserve for agents, the store and the logs.
 */
import { readFileSync } from 'node:fs';
import type { RelayConfig } from './config.ts';

/** Handshakes in progress and waiting on the agent port: at most a quarter of the descriptors. */
const HANDSHAKE_SHARE = 1 / 4;
/** Connections on the enrollment port: at most an eighth. Agents keep at least five eighths. */
const ENROLLMENT_SHARE = 1 / 8;
/** `Max open files` in /proc/self/limits: name, soft limit, hard limit, unit. */
const OPEN_FILES_LINE = /^Max open files\s+(\d+|unlimited)\s/m;

export interface ConnectionBudget {
  readonly handshakesInProgress: number;
  readonly handshakeQueue: number;
  readonly enrollmentConnections: number;
  readonly enrollmentConnectionsPerAddress: number;
  /** The configured limits that did not fit the descriptor limit, and what they became. */
  readonly lowered: readonly string[];
}

/**
 * The soft limit on open files (Node raises it to the hard limit at start), or undefined where
 * the platform does not say (not Linux).
 */
export function openFileLimit(): number | undefined {
  try {
    const match = OPEN_FILES_LINE.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (match?.[1] === undefined || match[1] === 'unlimited') return undefined;
    return Number(match[1]);
  } catch {
    return undefined;
  }
}

export function connectionBudget(
  limits: RelayConfig['limits'],
  fileLimit: number | undefined,
): ConnectionBudget {
  const lowered: string[] = [];
  const fit = (key: keyof RelayConfig['limits'], value: number, ceiling: number, floor = 1): number => {
    const bounded = Math.max(floor, Math.min(value, Math.floor(ceiling)));
    if (bounded < value) lowered.push(`limits.${key} ${value} -> ${bounded}`);
    return bounded;
  };
  const files = fileLimit ?? Number.POSITIVE_INFINITY;
  const handshakeShare = files * HANDSHAKE_SHARE;
  const handshakesInProgress = fit('handshakesInProgress', limits.handshakesInProgress, handshakeShare / 2);
  const enrollmentConnections = fit(
    'enrollmentConnections',
    limits.enrollmentConnections,
    files * ENROLLMENT_SHARE,
  );
  return {
    handshakesInProgress,
    handshakeQueue: fit('handshakeQueue', limits.handshakeQueue, handshakeShare - handshakesInProgress, 0),
    enrollmentConnections,
    enrollmentConnectionsPerAddress: Math.min(limits.enrollmentConnectionsPerAddress, enrollmentConnections),
    lowered,
  };
}

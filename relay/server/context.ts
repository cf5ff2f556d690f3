/**
 * What the relay core's handlers share: configuration, the current policy, the tables of agents,
 * sessions and pending requests, and where to report. One object, owned by the Broker.
 */
import type { Logger } from 'pino';
import type { AgentIdentity } from '../protocol/identity.ts';
import type { AgentConnection } from './agent-connection.ts';
import type { AuditLog } from './audit.ts';
import type { RelayConfig } from './config.ts';
import type { RelayMetrics } from './metrics.ts';
import type { Policy } from './policy.ts';
import type { PendingRequests } from './requests.ts';
import type { SessionTable } from './sessions.ts';
import type { Tunnels } from './tunnels.ts';

/** Issues a renewed certificate for a connected agent (the relay's CA); absent when the relay has none. */
export interface CertificateRenewer {
  renew(
    identity: AgentIdentity,
    serialHex: string,
    csrPem: string,
  ): Promise<{ certificatePem: string; caPem: string; serialHex: string }>;
}

export interface RelayContext {
  readonly config: RelayConfig;
  /** Replaced as a whole on reload; never mutated. */
  policy: Policy;
  readonly audit: AuditLog;
  readonly metrics: RelayMetrics;
  readonly log: Logger;
  readonly now: () => number;
  /** Connected agents by name: one connection per agent. */
  readonly agents: Map<string, AgentConnection>;
  readonly sessions: SessionTable;
  readonly requests: PendingRequests;
  /** Tunnel streams inside the sessions. */
  readonly tunnels: Tunnels;
  readonly renewer: CertificateRenewer | undefined;
}

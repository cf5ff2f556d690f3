/**
 * The welcome the relay answers a hello with: who the agent is (from its certificate), the lease
 * and ping rhythm, and the limits the relay holds this agent to, so the agent can plan within
 * them (pace its publishing, open no more sessions than it may) instead of learning them by being
 * refused or cut.
 */
import type { ToAgentFrameOf } from '../protocol/frames.ts';
import type { AgentConnection } from './agent-connection.ts';
import type { RelayConfig } from './config.ts';
import { PINGS_PER_LEASE } from './liveness.ts';

export function welcomeFrame(connection: AgentConnection, config: RelayConfig): ToAgentFrameOf<'welcome'> {
  const { leaseMs } = config.sessions;
  const { limits } = config;
  return {
    type: 'welcome',
    role: connection.role,
    name: connection.name,
    leaseMs,
    pingIntervalMs: Math.floor(leaseMs / PINGS_PER_LEASE),
    maxFrameBytes: limits.maxFrameBytes,
    limits: {
      // Counted per identity, every frame and its whole WebSocket message (agent-listener.ts).
      messagesPerSecond: limits.messagesPerSecond,
      bytesPerSecond: limits.bytesPerSecond,
      maxSessionsPerAgent: limits.maxSessionsPerAgent,
      maxSessionsPerPair: limits.maxSessionsPerPair,
      maxSubscriptionsPerAgent: limits.maxSubscriptionsPerAgent,
      maxPendingRequestsPerAgent: limits.maxPendingRequestsPerAgent,
      maxStreamsPerSession: limits.maxStreamsPerSession,
    },
  };
}

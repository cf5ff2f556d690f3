/**
 * Liveness, checked about once a second: the relay pings every agent, ends a connection whose
 * agent has said nothing for a whole lease, renews the leases of sessions whose two sides are
 * alive, ends offers never answered, and cuts consumers that stopped reading.
 */
import { ERROR_MESSAGES, type ErrorCode } from '../protocol/errors.ts';
import { CLOSE_CODE, type CloseCode } from '../protocol/close-codes.ts';
import type { AgentConnection } from './agent-connection.ts';
import type { RelayContext } from './context.ts';
import { endSession } from './session-handlers.ts';

/** Pings go out three times per lease, so two lost pongs still leave the lease alive. */
export const PINGS_PER_LEASE = 3;
/** A lease is renewed once a third of it has run, well before it can lapse. */
const RENEW_WHEN_REMAINING = 2 / 3;

export type Disconnect = (connection: AgentConnection, closeCode: CloseCode, reason: ErrorCode) => void;

export function checkLiveness(ctx: RelayContext, disconnect: Disconnect): void {
  const now = ctx.now();
  const { leaseMs } = ctx.config.sessions;
  const pingInterval = leaseMs / PINGS_PER_LEASE;
  for (const connection of [...ctx.agents.values()]) {
    if (now - connection.lastSeen > leaseMs) {
      disconnect(connection, CLOSE_CODE.leaseExpired, 'RELAY_ERR_LEASE_EXPIRED');
    } else if (
      connection.state === 'awaitingHello' &&
      now - connection.connectedAt > ctx.config.tls.handshakeTimeoutMs
    ) {
      disconnect(connection, CLOSE_CODE.protocolError, 'RELAY_ERR_BAD_STATE');
    } else {
      if (now - connection.lastPingAt >= pingInterval) {
        connection.lastPingAt = now;
        connection.pingsSent = (connection.pingsSent + 1) >>> 0;
        connection.outbound.sendControl({ type: 'ping', nonce: connection.pingsSent });
      }
      connection.outbound.checkStalled();
    }
  }
  for (const session of [...ctx.sessions.values()]) {
    if (now >= session.expiresAt) {
      const code = session.state === 'offered' ? 'RELAY_ERR_SESSION_REFUSED' : 'RELAY_ERR_LEASE_EXPIRED';
      endSession(ctx, session, code, ERROR_MESSAGES[code]);
    } else if (session.state === 'open' && session.expiresAt - now < leaseMs * RENEW_WHEN_REMAINING) {
      session.expiresAt = now + leaseMs;
      for (const member of [session.it, session.ot]) {
        member.outbound.sendControl({ type: 'sessionLease', session: session.id, leaseMs });
      }
    }
  }
}

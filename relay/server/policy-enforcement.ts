/**
 * A new policy, applied to everything already running: connections, sessions and subscriptions
 * it still allows are kept; what it no longer allows is ended on both sides, with the reason.
 */
import { CLOSE_CODE } from '../protocol/close-codes.ts';
import { ERROR_MESSAGES } from '../protocol/errors.ts';
import { quoteField } from '../protocol/wire-text.ts';
import type { RelayContext } from './context.ts';
import type { Disconnect } from './liveness.ts';
import type { Policy } from './policy.ts';
import { endSession, withdrawSubscription } from './session-handlers.ts';

export interface PolicyEnforcement {
  readonly disconnected: number;
  readonly sessionsClosed: number;
  readonly subscriptionsWithdrawn: number;
}

export function enforcePolicy(ctx: RelayContext, policy: Policy, disconnect: Disconnect): PolicyEnforcement {
  ctx.policy = policy;
  let disconnected = 0;
  let sessionsClosed = 0;
  let subscriptionsWithdrawn = 0;
  for (const connection of [...ctx.agents.values()]) {
    // That topic passed the old policy; the next publish must pass the new one.
    connection.lastPublishTopic = undefined;
    if (policy.admits(connection.identity)) continue;
    disconnect(connection, CLOSE_CODE.policyViolation, 'RELAY_ERR_POLICY_CHANGED');
    disconnected++;
  }
  for (const session of [...ctx.sessions.values()]) {
    const { it, ot } = session;
    if (!policy.mayOpenSession(it.identity, ot.identity, session.filter)) {
      endSession(ctx, session, 'RELAY_ERR_POLICY_CHANGED', ERROR_MESSAGES.RELAY_ERR_POLICY_CHANGED);
      sessionsClosed++;
      continue;
    }
    for (const filter of [...session.subscriptions]) {
      if (policy.maySubscribeInSession(it.identity, ot.identity, session.filter, filter)) continue;
      withdrawSubscription(session, filter);
      it.outbound.sendControl({
        type: 'error',
        session: session.id,
        code: 'RELAY_ERR_POLICY_CHANGED',
        message: `subscription ${quoteField(filter)} withdrawn by policy`,
      });
      subscriptionsWithdrawn++;
    }
  }
  return { disconnected, sessionsClosed, subscriptionsWithdrawn };
}

/**
 * Which consumers the relay's session limits leave without a session. Each consumer is one
 * session with its OT agent and one subscription in it; the relay refuses a session beyond
 * `maxSessionsPerPair` (between this IT agent and one OT agent) or `maxSessionsPerAgent`, and a
 * subscription beyond `maxSubscriptionsPerAgent`, and announces all three in its welcome. Without
 * this plan the consumers raced for the sessions, the losers (a different one after each
 * reconnect) asking again for ever with nothing to say why. With it, the first consumers in the
 * configuration get the sessions, every time, and the others say which limit leaves them out.
 * A peer this agent also tunnels to keeps one session for the tunnel entrances (agents/tunnels/
 * open one per OT agent, when a client first connects).
 *
 * Consumers of one OT agent do not share a session: a session is scoped to one filter that policy
 * checked, a `dropped` notice names a session and not a consumer, and two consumers with the same
 * filter would be one subscription; sharing would take a filter wide enough for all of them,
 * which policy may rightly refuse.
 */
import { DmzError } from '../../relay/protocol/errors.ts';
import type { WelcomeLimits } from '../../relay/protocol/frames.ts';
import { quoteField } from '../../relay/protocol/wire-text.ts';

export interface PlannedConsumer {
  readonly name: string;
  /** The OT agent it consumes from. */
  readonly peer: string;
}

/**
 * Consumers (by name) beyond the limits, each with an AGENT_ERR_OVER_RELAY_LIMIT saying which;
 * `tunnelPeers` are the OT agents this agent's tunnel entrances lead to.
 */
export function consumersBeyondLimits(
  consumers: readonly PlannedConsumer[],
  limits: WelcomeLimits | undefined,
  tunnelPeers: ReadonlySet<string> = new Set(),
): Map<string, DmzError> {
  const beyond = new Map<string, DmzError>();
  if (limits === undefined) return beyond;
  const { maxSessionsPerPair, maxSessionsPerAgent, maxSubscriptionsPerAgent } = limits;
  const perPeer = new Map<string, string[]>();
  let sessions = tunnelPeers.size;
  let subscriptions = 0;
  for (const consumer of consumers) {
    const ofPeer = perPeer.get(consumer.peer) ?? [];
    perPeer.set(consumer.peer, ofPeer);
    const peer = quoteField(consumer.peer);
    const tunnels = tunnelPeers.has(consumer.peer) ? 1 : 0;
    let reason: string | undefined;
    if (maxSessionsPerPair !== undefined && ofPeer.length + tunnels >= maxSessionsPerPair) {
      const held = [
        ...(ofPeer.length === 0
          ? []
          : [
              `the consumers before it in the configuration (${quoteField(ofPeer[0] ?? '')} .. ` +
                `${quoteField(ofPeer.at(-1) ?? '')})`,
            ]),
        ...(tunnels === 0 ? [] : ['the tunnel entrances']),
      ];
      reason =
        `the relay allows at most ${maxSessionsPerPair} sessions between this IT agent and ${peer} ` +
        `(relay limits.maxSessionsPerPair), held by ${held.join(' and ')}`;
    } else if (maxSessionsPerAgent !== undefined && sessions >= maxSessionsPerAgent) {
      reason = `the relay allows at most ${maxSessionsPerAgent} sessions per agent (relay limits.maxSessionsPerAgent)`;
    } else if (maxSubscriptionsPerAgent !== undefined && subscriptions >= maxSubscriptionsPerAgent) {
      reason = `the relay allows at most ${maxSubscriptionsPerAgent} subscriptions per agent (relay limits.maxSubscriptionsPerAgent)`;
    }
    if (reason === undefined) {
      ofPeer.push(consumer.name);
      sessions++;
      subscriptions++;
    } else {
      const message = `consumer ${quoteField(consumer.name)} has no session: ${reason}`;
      beyond.set(consumer.name, new DmzError('AGENT_ERR_OVER_RELAY_LIMIT', message));
    }
  }
  return beyond;
}

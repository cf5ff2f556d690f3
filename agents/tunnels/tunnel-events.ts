/**
 * The stream frames of either end go to its tunnels: the entrance (IT) or the exit (OT). One
 * wiring, for the agent runtime (agents/runtime/agent.ts) and the tests that build the two ends.
 */
import type { LinkEvents } from '../link/relay-link.ts';
import type { TunnelEntrance } from './entrance.ts';
import type { TunnelExit } from './exit.ts';

export function tunnelEvents(tunnels: TunnelEntrance | TunnelExit): LinkEvents {
  return {
    streamData: (data) => tunnels.frames.data(data),
    streamWindow: (window) => tunnels.frames.window(window),
    streamClosed: (closed) => tunnels.frames.closed(closed),
    streamRefused: (refusal) => tunnels.frames.refused(refusal),
  };
}

/**
 * What the bridge publishes, in one of two formats (json-format.ts, sparkplug-format.ts): the
 * messages for points, for the state of the OT agents and of the bridge itself, and the will.
 * Every message goes out at QoS 1 and in the order the format made it, so a format may number its
 * messages as it makes them (Sparkplug's `seq`).
 */
import type { SinkEntry } from '../sink.ts';

export interface BridgeMessage {
  readonly topic: string;
  readonly payload: Buffer;
  readonly retain: boolean;
}

/** OT agent name -> whether a consumer of this sink has its session with it now. */
export type PeerStates = ReadonlyMap<string, boolean>;

export interface BridgeFormat {
  /** The will of the next connection attempt (each attempt has its own: Sparkplug's bdSeq). */
  will(): BridgeMessage;
  /** The first messages of a connection, after its CONNACK. */
  connected(peers: PeerStates): BridgeMessage[];
  /** The connection is gone: what the broker was told no longer counts. */
  disconnected(): void;
  /** Messages for OT agents whose state changed since this connection last said it. */
  peersChanged(peers: PeerStates): BridgeMessage[];
  /** The messages of a sink write's entries, for the current connection. */
  render(entries: readonly SinkEntry[]): BridgeMessage[];
  /** A message on one of `subscriptions()`; the messages that answer it. */
  command(topic: string, payload: Buffer, peers: PeerStates): BridgeMessage[];
  /** The last messages before a clean disconnect, which sends no will. */
  closing(): BridgeMessage[];
  /** Topics the bridge subscribes to (commands addressed to it). */
  subscriptions(): readonly string[];
}

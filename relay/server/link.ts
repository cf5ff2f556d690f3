/**
 * The transport seen by the relay core: one authenticated agent connection. The WebSocket server
 * implements it; unit tests implement it in memory, so the core is testable without sockets.
 */
import type { CloseCode } from '../protocol/close-codes.ts';
import type { AgentIdentity } from '../protocol/identity.ts';

export interface AgentLink {
  /** From the verified client certificate, never from a frame. */
  readonly identity: AgentIdentity;
  /** Serial of that certificate (lower-case hex), so revocation can find live connections. */
  readonly serialHex: string;
  readonly remoteAddress: string;
  /**
   * One binary message, whole or in pieces that go on the wire back to back (a deliver frame: its
   * head, then the points batch every subscriber shares).
   */
  send(message: Uint8Array | readonly Uint8Array[]): void;
  /** Bytes accepted by send() but not yet written to the network. */
  bufferedBytes(): number;
  /**
   * One message of tunnel bulk (stream data), in pieces: it waits in a lane of its own and yields
   * to everything send() carries (message-writer.ts).
   */
  sendBulk(message: readonly Uint8Array[]): void;
  /** Bytes sendBulk() holds in its lane, not yet handed to the socket. */
  bulkBytes(): number;
  close(code: CloseCode, reason: string): void;
}

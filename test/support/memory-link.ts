/** An in-memory AgentLink: the relay core without sockets, with a controllable send queue. */
import { decodeFrame } from '../../relay/protocol/codec.ts';
import type { ToAgentFrame } from '../../relay/protocol/frames.ts';
import type { AgentIdentity, Role } from '../../relay/protocol/identity.ts';
import type { AgentLink } from '../../relay/server/link.ts';

export class MemoryLink implements AgentLink {
  readonly identity: AgentIdentity;
  readonly serialHex: string;
  readonly remoteAddress = '192.0.2.1';
  readonly frames: ToAgentFrame[] = [];
  closed: { code: number; reason: string } | undefined;
  /** What the "network" has not taken yet; tests raise it to play a slow reader. */
  queuedBytes = 0;

  constructor(role: Role, name: string, serialHex = name) {
    this.identity = { trustDomain: 'plant.example', role, name };
    this.serialHex = serialHex;
  }

  send(message: Uint8Array | readonly Uint8Array[]): void {
    this.frames.push(
      decodeFrame(
        message instanceof Uint8Array ? message : Uint8Array.from(Buffer.concat(message)),
        'toAgent',
      ),
    );
  }

  bufferedBytes(): number {
    return this.queuedBytes;
  }

  /** Bulk is taken at once here: the lane's own behaviour is message-writer.ts's, tested on a socket. */
  sendBulk(message: readonly Uint8Array[]): void {
    this.send(message);
  }

  bulkBytes(): number {
    return 0;
  }

  close(code: number, reason: string): void {
    this.closed ??= { code, reason };
  }

  ofType<T extends ToAgentFrame['type']>(type: T): Extract<ToAgentFrame, { type: T }>[] {
    return this.frames.filter((frame): frame is Extract<ToAgentFrame, { type: T }> => frame.type === type);
  }
}

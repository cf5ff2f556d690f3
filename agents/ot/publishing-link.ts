/**
 * What the OT side needs of its link to the relay to send points: the part of RelayLink that the
 * publisher and the replay server use, so both can be driven in tests without a socket.
 */
import type { SendRoom } from '../link/send-budget.ts';

export interface PublishingLink {
  readonly closed: boolean;
  /** Bytes queued for the relay and not yet written. */
  readonly bufferedBytes: number;
  readonly welcome: { readonly maxFrameBytes: number };
  /** What the relay's announced rates let the link send now, and the largest frame to cut. */
  readonly budget: SendRoom;
  publish(topic: string, seq: number, points: readonly Uint8Array[], session?: number): void;
  publishBatch(topic: string, seq: number, batch: Uint8Array, count: number, session?: number): void;
  /**
   * Resolves once at most `maxBufferedBytes` are queued and the send budget has room for a whole
   * frame (of budget.frameBytes), or the link closed.
   */
  whenWritable(maxBufferedBytes: number): Promise<void>;
}

/**
 * The streams of one agent over its relay link, many on one WebSocket: routes the relay's stream
 * frames to their stream, gives each stream its view of the link (StreamLink), and keeps the one
 * bound per connection: while the link holds more than LINK_BULK_BYTES unsent, no stream reads
 * its socket, so tunnel bulk never grows the agent's send queue past that (and an OT agent's live
 * points, which wait for the same queue, keep their turn). Entrance and exit each have one.
 */
import type { ErrorCode } from '../../relay/protocol/errors.ts';
import { MAX_STREAM_CHUNK_BYTES } from '../../relay/protocol/streams.ts';
import type { StreamClosed, StreamData, StreamRefusal, StreamWindow } from '../link/relay-link.ts';
import type { StreamLink, TunnelStream } from './tunnel-stream.ts';

/** What the tunnels use of the relay link (RelayLink has it all; tests may fake less). */
export interface TunnelLink {
  readonly closed: boolean;
  readonly welcome: {
    readonly maxFrameBytes: number;
    readonly limits?: { readonly maxStreamsPerSession?: number };
  };
  readonly bufferedBytes: number;
  whenWritable(maxBufferedBytes: number): Promise<void>;
  sendStreamData(session: number, stream: number, data: Uint8Array, end?: boolean): void;
  grantStreamCredit(session: number, stream: number, credit: number): void;
  closeStream(session: number, stream: number, code: ErrorCode, message?: string): void;
}

/**
 * Tunnel bytes the link may hold unsent before streams stop reading: a millisecond or two of the
 * link at full speed keeps it busy between two drains, and stays a small share of what an OT
 * agent's publisher lets the link hold for points.
 */
export const LINK_BULK_BYTES = 1024 * 1024;
/** A streamData frame's fields around its data: kind, map, session, stream, end, key, bin header. */
const STREAM_FRAME_OVERHEAD = 64;

export interface MuxStats {
  readonly open: number;
  readonly bytesSent: number;
  readonly bytesReceived: number;
  /** Bytes the open streams hold at this end (each at most its window plus one read). */
  readonly bufferedBytes: number;
}

/** What an end's stream frames from the link go to (tunnel-events.ts). */
export type StreamFrames = Pick<StreamMux, 'data' | 'window' | 'closed' | 'refused'>;

export class StreamMux {
  #link: TunnelLink | undefined;
  readonly #streams = new Map<string, TunnelStream>();
  readonly #waiting = new Set<() => void>();
  #watching = false;
  /** Bytes of streams that finished, so the totals never go down. */
  #finishedSent = 0;
  #finishedReceived = 0;

  get link(): TunnelLink | undefined {
    return this.#link;
  }

  attach(link: TunnelLink): void {
    this.#link = link;
  }

  /** The link is gone: every stream with it, with no frame (the relay ended them too). */
  detach(): void {
    this.#link = undefined;
    for (const stream of [...this.#streams.values()]) stream.ended('AGENT_ERR_TUNNEL_OFFLINE');
    this.#waiting.clear();
  }

  /** The view of the link that stream `id` of `session` sends through. */
  linkFor(link: TunnelLink, session: number, id: number): StreamLink {
    return {
      maxChunk: Math.min(MAX_STREAM_CHUNK_BYTES, link.welcome.maxFrameBytes - STREAM_FRAME_OVERHEAD),
      sendData: (data, end) => {
        if (!link.closed) link.sendStreamData(session, id, data, end);
      },
      grant: (credit) => {
        if (!link.closed) link.grantStreamCredit(session, id, credit);
      },
      abort: (code, message) => {
        if (!link.closed) link.closeStream(session, id, code, message);
      },
      writable: () => link.closed || link.bufferedBytes <= LINK_BULK_BYTES,
      whenWritable: (resume) => this.#whenWritable(link, resume),
    };
  }

  add(stream: TunnelStream): void {
    this.#streams.set(key(stream.session, stream.id), stream);
  }

  /** A finished stream leaves the table; its bytes stay in the totals. */
  remove(stream: TunnelStream): void {
    if (this.#streams.get(key(stream.session, stream.id)) !== stream) return;
    this.#streams.delete(key(stream.session, stream.id));
    this.#finishedSent += stream.bytesSent;
    this.#finishedReceived += stream.bytesReceived;
  }

  get(session: number, id: number): TunnelStream | undefined {
    return this.#streams.get(key(session, id));
  }

  data(frame: StreamData): void {
    this.get(frame.session, frame.stream)?.received(frame.data, frame.end === true);
  }

  window(frame: StreamWindow): void {
    this.get(frame.session, frame.stream)?.granted(frame.credit);
  }

  closed(frame: StreamClosed): void {
    this.get(frame.session, frame.stream)?.ended(frame.code);
  }

  /**
   * The relay refused a frame of ours. Refusing a streamOpen leaves no stream at the relay; a
   * refusal later leaves one there, which our abort then ends on both sides.
   */
  refused(refusal: StreamRefusal): void {
    const stream = this.get(refusal.session ?? 0, refusal.stream);
    if (stream === undefined || stream.halfClosedBothWays) return;
    if (stream.state === 'opening') stream.ended(refusal.code);
    else stream.abort('AGENT_ERR_TUNNEL_PROTOCOL', `the relay refused a frame: ${refusal.code}`);
  }

  /** A session ended: its streams with it (the sessionClose told both ends). */
  sessionClosed(session: number, code: string): void {
    for (const stream of [...this.#streams.values()]) if (stream.session === session) stream.ended(code);
  }

  streams(): IterableIterator<TunnelStream> {
    return this.#streams.values();
  }

  stats(): MuxStats {
    let bytesSent = this.#finishedSent;
    let bytesReceived = this.#finishedReceived;
    let bufferedBytes = 0;
    for (const stream of this.#streams.values()) {
      bytesSent += stream.bytesSent;
      bytesReceived += stream.bytesReceived;
      bufferedBytes += stream.bufferedBytes;
    }
    return { open: this.#streams.size, bytesSent, bytesReceived, bufferedBytes };
  }

  /** One wait on the link's drain serves every stream that is waiting for it. */
  #whenWritable(link: TunnelLink, resume: () => void): void {
    this.#waiting.add(resume);
    if (this.#watching) return;
    this.#watching = true;
    void link.whenWritable(LINK_BULK_BYTES / 2).then(() => {
      this.#watching = false;
      const waiting = [...this.#waiting];
      this.#waiting.clear();
      for (const wake of waiting) wake();
    });
  }
}

function key(session: number, id: number): string {
  return `${session}:${id}`;
}

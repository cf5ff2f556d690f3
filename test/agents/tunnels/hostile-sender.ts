/**
 * The hostile end of one tunnel stream, a RawAgent that spends its credit as it likes: it counts
 * what it was granted (the open's window, then the peer's streamWindow frames) and what its frames
 * spent (streamFrameCredit, as the relay counts it).
 */
import { MAX_STREAM_CHUNK_BYTES, streamFrameCredit } from '../../../relay/protocol/streams.ts';
import type { RawAgent } from '../../support/raw-agent.ts';
import { waitFor } from '../../support/wait.ts';

export class HostileSender {
  readonly #raw: RawAgent;
  readonly #session: number;
  readonly #stream: number;
  readonly #initialCredit: number;
  /** Bytes sent, and the credit their frames spent. */
  sent = 0;
  spent = 0;

  /** `initialCredit`: the window of the streamOpen when the sender is the OT end, else 0. */
  constructor(raw: RawAgent, session: number, stream: number, initialCredit = 0) {
    this.#raw = raw;
    this.#session = session;
    this.#stream = stream;
    this.#initialCredit = initialCredit;
  }

  /** Credit granted so far, in all (the recorder's frames must still be there). */
  get granted(): number {
    let granted = this.#initialCredit;
    for (const frame of this.#raw.frames)
      if (frame.type === 'streamWindow' && frame.session === this.#session && frame.stream === this.#stream)
        granted += frame.credit;
    return granted;
  }

  get credit(): number {
    return this.granted - this.spent;
  }

  send(bytes: number, end = false): void {
    const data = new Uint8Array(bytes);
    this.#raw.send({
      type: 'streamData',
      session: this.#session,
      stream: this.#stream,
      data,
      ...(end ? { end } : {}),
    });
    this.sent += bytes;
    this.spent += streamFrameCredit(bytes);
  }

  /**
   * Large frames, keeping `reserve` bytes of credit back, until the agent at the other end holds
   * two of them unwritten: the socket's kernel buffers are full (a write queued in the agent means
   * the kernel took no more), so every later write queues in the agent too.
   */
  async fillKernelBuffers(heldByAgent: () => number, reserve = 0): Promise<void> {
    const full = () => heldByAgent() >= 2 * MAX_STREAM_CHUNK_BYTES;
    while (!full()) {
      if (this.credit - reserve >= MAX_STREAM_CHUNK_BYTES) {
        this.send(MAX_STREAM_CHUNK_BYTES);
        continue;
      }
      await waitFor(
        () => this.credit - reserve >= MAX_STREAM_CHUNK_BYTES || full(),
        'more credit, or the agent holding what it got',
        30_000,
        5,
      );
    }
  }

  /** `count` bytes, one a frame, in bursts that let the event loop breathe. */
  async sendByteByByte(count: number): Promise<void> {
    for (let sent = 0; sent < count; sent++) {
      this.send(1);
      if (sent % 4096 === 4095) await new Promise((resolve) => setImmediate(resolve));
    }
  }
}

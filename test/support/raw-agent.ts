/**
 * An agent connection without the agent client's manners, for tests of the relay's defences: it
 * sends whatever it is told (frames before hello, text frames, broken bytes), answers nothing on its
 * own (no pongs, no session accepts), and can stop reading its socket altogether.
 */
import { once } from 'node:events';
import { WebSocket } from 'ws';
import { decodeFrame, encodeFrame } from '../../relay/protocol/codec.ts';
import type { ToRelayFrame } from '../../relay/protocol/frames.ts';
import { MAX_FRAME_BYTES, SUBPROTOCOL } from '../../relay/protocol/limits.ts';
import { FrameRecorder } from './relay-harness.ts';

export interface RawAgentOptions {
  /** `wss://127.0.0.1:<port>/v1/agent` */
  readonly url: string;
  /** The relay's CA: the relay's server certificate is verified as a real agent would. */
  readonly caPem: string;
  readonly certPem: string;
  readonly keyPem: string;
  /** Send hello and wait for the welcome (default true). */
  readonly hello?: boolean;
}

export class RawAgent extends FrameRecorder {
  readonly socket: WebSocket;
  /** Messages from the relay that were not a valid frame (a relay bug if ever non-zero). */
  undecodable = 0;

  private constructor(socket: WebSocket) {
    super();
    this.socket = socket;
    socket.on('message', (data: Buffer) => {
      try {
        this.frames.push(decodeFrame(data, 'toAgent'));
      } catch {
        this.undecodable++;
      }
    });
    socket.on('close', (code: number, reason: Buffer) => {
      this.closed = { code, reason: reason.toString() };
    });
    socket.on('error', () => undefined); // surfaced through 'close'
  }

  static async open(options: RawAgentOptions): Promise<RawAgent> {
    const socket = new WebSocket(options.url, SUBPROTOCOL, {
      cert: options.certPem,
      key: options.keyPem,
      ca: options.caPem,
      minVersion: 'TLSv1.3',
      maxPayload: MAX_FRAME_BYTES,
      perMessageDeflate: false,
      handshakeTimeout: 5_000,
    });
    const agent = new RawAgent(socket);
    await once(socket, 'open');
    if (options.hello ?? true) {
      agent.send({ type: 'hello', software: 'raw-test-agent' });
      await agent.next('welcome');
    }
    return agent;
  }

  send(frame: ToRelayFrame): void {
    this.sendRaw(encodeFrame(frame));
  }

  sendRaw(data: Uint8Array | string, binary = true): void {
    this.socket.send(data, { binary });
  }

  /** Stops reading from the socket: the relay's writes back up into its own buffers. */
  pauseReading(): void {
    this.socket.pause();
  }

  resumeReading(): void {
    this.socket.resume();
  }

  /** Drops the connection at once (a paused socket would otherwise keep the test process alive). */
  terminate(): void {
    this.socket.terminate();
  }
}

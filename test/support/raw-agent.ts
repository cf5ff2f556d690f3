/**
 * An agent connection without the agent link's manners, for tests of the relay's defences: it
 * sends whatever it is told (frames before hello, text frames, broken bytes), answers nothing on its
 * own (no pongs unless asked, no session accepts), records every frame the relay sends (errors
 * without a ref, acks, pongs included), and can stop reading its socket altogether. The few steps
 * a test needs to get into a session (open, accept, subscribe) are here, done frame by frame.
 */
import { once } from 'node:events';
import { WebSocket } from 'ws';
import { decodeFrame, encodeFrame } from '../../relay/protocol/codec.ts';
import { DmzError, isErrorCode } from '../../relay/protocol/errors.ts';
import type { ToAgentFrame, ToAgentFrameOf, ToRelayFrame } from '../../relay/protocol/frames.ts';
import { MAX_FRAME_BYTES, SUBPROTOCOL } from '../../relay/protocol/limits.ts';
import { FrameRecorder } from './frame-recorder.ts';
import { waitFor } from './wait.ts';

export interface RawAgentOptions {
  /** `wss://127.0.0.1:<port>/v1/agent` */
  readonly url: string;
  /** The relay's CA: the relay's server certificate is verified as a real agent would. */
  readonly caPem: string;
  readonly certPem: string;
  readonly keyPem: string;
  /** Send hello and wait for the welcome (default true). */
  readonly hello?: boolean;
  /** Answer the relay's pings, for a raw agent that must outlive a lease (default false). */
  readonly answerPings?: boolean;
}

/** Refs of the helpers below count from 1; a test that picks refs of its own picks them above 100. */
const FIRST_HELPER_REF = 1;
/** Round-trip nonces, far from the small ones tests pick for pings of their own. */
const FIRST_ROUND_TRIP_NONCE = 2_000_000_000;

export class RawAgent extends FrameRecorder {
  readonly socket: WebSocket;
  /** Messages from the relay that were not a valid frame (a relay bug if ever non-zero). */
  undecodable = 0;
  #nextRef = FIRST_HELPER_REF;
  #nextNonce = FIRST_ROUND_TRIP_NONCE;
  readonly #accepted = new Set<number>();

  private constructor(socket: WebSocket, answerPings: boolean) {
    super();
    this.socket = socket;
    socket.on('message', (data: Buffer) => {
      let frame: ToAgentFrame;
      try {
        frame = decodeFrame(data, 'toAgent');
      } catch {
        this.undecodable++;
        return;
      }
      this.frames.push(frame);
      if (answerPings && frame.type === 'ping' && socket.readyState === WebSocket.OPEN)
        this.send({ type: 'pong', nonce: frame.nonce });
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
    const agent = new RawAgent(socket, options.answerPings ?? false);
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

  /** IT side: asks for a session; resolves with the sessionAccept, rejects with the error's code. */
  async openSession(peer: string, filter: string): Promise<ToAgentFrameOf<'sessionAccept'>> {
    const ref = this.#nextRef++;
    this.send({ type: 'sessionOpen', ref, peer, filter });
    const answer = await this.#answerTo(ref);
    if (answer.type !== 'sessionAccept') throw new Error(`session open answered with ${answer.type}`);
    return answer;
  }

  /** IT side: subscribes in a session; resolves on the ack, rejects with the error's code. */
  async subscribe(session: number, filter: string): Promise<void> {
    const ref = this.#nextRef++;
    this.send({ type: 'subscribe', ref, session, filter });
    await this.#answerTo(ref);
  }

  /** OT side: accepts the next offer not yet accepted (from `peer` if given); resolves with its session. */
  async acceptOffer(peer?: string): Promise<number> {
    const offer = await this.next(
      'sessionOpen',
      (frame) => !this.#accepted.has(frame.session) && (peer === undefined || frame.peer === peer),
    );
    this.#accepted.add(offer.session);
    this.send({ type: 'sessionAccept', session: offer.session });
    return offer.session;
  }

  /**
   * A ping and its pong: once it is back, the relay has handled everything sent before it (it
   * handles an agent's frames in order) and this agent has every answer to those frames.
   */
  async roundTrip(timeoutMs = 5_000): Promise<void> {
    const nonce = this.#nextNonce++;
    this.send({ type: 'ping', nonce });
    await this.next('pong', (frame) => frame.nonce === nonce, timeoutMs);
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

  async #answerTo(ref: number): Promise<ToAgentFrameOf<'ack' | 'sessionAccept' | 'renewed'>> {
    const answer = await waitFor(
      () =>
        this.frames.find(
          (frame): frame is ToAgentFrameOf<'ack' | 'sessionAccept' | 'renewed' | 'error'> =>
            (frame.type === 'ack' ||
              frame.type === 'sessionAccept' ||
              frame.type === 'renewed' ||
              frame.type === 'error') &&
            frame.ref === ref,
        ),
      `the answer to ref ${ref}`,
    );
    if (answer.type === 'error')
      throw new DmzError(isErrorCode(answer.code) ? answer.code : 'RELAY_ERR_INTERNAL', answer.message);
    return answer;
  }
}

/**
 * The OT side of the tunnels: streams the relay hands over are served by the agent's own named
 * services (agent.yaml `ot.services`), each connecting to the one target its config names. The
 * relay checked its policy; this end checks its own, independently: the service exists, the IT
 * agent is on its allowlist (if it has one), that agent holds fewer than its share of the
 * service's streams (`maxStreamsPerPeer`), the service has a stream to spare. A target that
 * refuses or does not answer in time is a prompt streamClose with the reason, never a hang; a
 * stream with no byte either way for the idle time is closed.
 */
import { DoublingCount } from '../runtime/doubling-count.ts';
import { connect, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { ERROR_MESSAGES, type ErrorCode } from '../../relay/protocol/errors.ts';
import { DEFAULT_STREAM_WINDOW_BYTES } from '../../relay/protocol/streams.ts';
import type { StreamOffer } from '../link/relay-link.ts';
import { ByteBudget } from './byte-budget.ts';
import { StreamMux, type MuxStats, type StreamFrames, type TunnelLink } from './stream-mux.ts';
import type { TunnelService } from './tunnel-config.ts';
import { TunnelStream, type StreamLink, type StreamOutcome } from './tunnel-stream.ts';

/**
 * Connections a service opens to its target a second at most, or its `maxStreams` if that is
 * more (so all its streams can come back at once after a reconnect). The streams limit bounds
 * connections at once, not their rate: without this, an IT agent opening and closing streams in
 * a loop would have this agent storm the device with connects (hundreds a second, measured), and
 * a PLC's TCP stack takes a handful of connections and accepts slowly. A poller that connects for
 * every poll stays far below it.
 */
export const SERVICE_CONNECTS_PER_SECOND = 10;

export interface TunnelExitOptions {
  readonly services: readonly TunnelService[];
  readonly logger: Logger;
  /** The IT agent of a session this agent accepted (as the relay's offer named it). */
  readonly peerOf: (session: number) => string | undefined;
  /** The receive window granted per stream (default DEFAULT_STREAM_WINDOW_BYTES). */
  readonly window?: number;
}

interface ServiceState {
  readonly settings: TunnelService;
  readonly budget: ByteBudget | undefined;
  /** Target connections a second (SERVICE_CONNECTS_PER_SECOND), a second's worth at once. */
  readonly connects: ByteBudget;
  open: number;
  /** Streams open (connecting or connected) per IT agent, held to `maxStreamsPerPeer`. */
  readonly heldBy: Map<string, number>;
}

export interface ExitStats extends MuxStats {
  readonly refused: number;
}

export class TunnelExit {
  readonly #services = new Map<string, ServiceState>();
  readonly #logger: Logger;
  readonly #window: number;
  readonly #mux = new StreamMux();
  readonly #peerOf: (session: number) => string | undefined;
  readonly #refused = new DoublingCount();

  constructor(options: TunnelExitOptions) {
    for (const settings of options.services) {
      const budget =
        settings.bytesPerSecond === undefined ? undefined : new ByteBudget(settings.bytesPerSecond);
      const connects = new ByteBudget(Math.max(SERVICE_CONNECTS_PER_SECOND, settings.maxStreams));
      this.#services.set(settings.name, { settings, budget, connects, open: 0, heldBy: new Map() });
    }
    this.#logger = options.logger;
    this.#peerOf = options.peerOf;
    this.#window = options.window ?? DEFAULT_STREAM_WINDOW_BYTES;
  }

  attach(link: TunnelLink): void {
    this.#mux.attach(link);
  }

  detach(): void {
    this.#mux.detach();
  }

  sessionClosed(session: number, code: string): void {
    this.#mux.sessionClosed(session, code);
  }

  streamOpened(offer: StreamOffer): void {
    const link = this.#mux.link;
    if (link === undefined) return;
    const refuse = (code: ErrorCode) => {
      // An IT agent can ask for refusals at will: logged at the 1st, 2nd, 4th, ... of them.
      if (this.#refused.note()) {
        this.#logger.warn(
          {
            session: offer.session,
            stream: offer.stream,
            service: offer.service,
            peer,
            code,
            refused: this.#refused.count,
          },
          'tunnel stream refused',
        );
      }
      link.closeStream(offer.session, offer.stream, code, ERROR_MESSAGES[code]);
    };
    const peer = this.#peerOf(offer.session);
    // The relay forgets a stream once both sides sent their end, while this end may still be
    // writing to the target; a new stream of that number would take the old one's place in the
    // table, and the old one would outlive the session and the link, holding its target.
    if (this.#mux.get(offer.session, offer.stream) !== undefined)
      return refuse('AGENT_ERR_TUNNEL_STREAM_IN_USE');
    const service = this.#services.get(offer.service);
    if (service === undefined) return refuse('AGENT_ERR_TUNNEL_NO_SERVICE');
    const { settings } = service;
    if (peer === undefined || (settings.allow !== undefined && !settings.allow.includes(peer)))
      return refuse('AGENT_ERR_TUNNEL_FORBIDDEN');
    // The service's bound first: with one agent (and maxStreamsPerPeer its default, maxStreams) the
    // refusal stays AGENT_ERR_TUNNEL_LIMIT, as it was before there was a bound per agent.
    if (service.open >= settings.maxStreams) return refuse('AGENT_ERR_TUNNEL_LIMIT');
    if ((service.heldBy.get(peer) ?? 0) >= settings.maxStreamsPerPeer)
      return refuse('AGENT_ERR_TUNNEL_PEER_LIMIT');
    if (!service.connects.takeIfAvailable(1)) return refuse('AGENT_ERR_TUNNEL_CONNECT_RATE');
    holdStream(service, peer, 1);
    const streamLink = this.#mux.linkFor(link, offer.session, offer.stream);
    const stream = new TunnelStream({
      session: offer.session,
      id: offer.stream,
      service: offer.service,
      peer,
      window: this.#window,
      link: streamLink,
      socketFailure: 'AGENT_ERR_TUNNEL_TARGET_FAILED',
      ...(service.budget === undefined ? {} : { pace: (bytes: number) => service.budget?.take(bytes) ?? 0 }),
      // Every end comes here once: both halves ended, an abort by either end, the session's end,
      // the link's loss (StreamMux.detach).
      onFinished: (finished, outcome) => {
        holdStream(service, peer, -1);
        this.#finished(finished, outcome);
      },
    });
    this.#mux.add(stream);
    this.#connect(stream, settings, offer.window, streamLink);
  }

  /** Where the link's stream frames for this end go (tunnel-events.ts). */
  get frames(): StreamFrames {
    return this.#mux;
  }

  stats(): ExitStats {
    return { ...this.#mux.stats(), refused: this.#refused.count };
  }

  /** Connects to the target; only once it answers does the IT side get credit to send. */
  #connect(stream: TunnelStream, settings: TunnelService, entranceWindow: number, link: StreamLink): void {
    const socket: Socket = connect({ ...settings.target, allowHalfOpen: true });
    const failed = (error: Error & { code?: string }) => {
      clearTimeout(timer);
      stream.abort(
        error.code === 'ECONNREFUSED' ? 'AGENT_ERR_TUNNEL_TARGET_REFUSED' : 'AGENT_ERR_TUNNEL_TARGET_FAILED',
      );
    };
    const timer = setTimeout(() => {
      socket.off('error', failed);
      socket.on('error', () => undefined);
      socket.destroy();
      stream.abort('AGENT_ERR_TUNNEL_TARGET_TIMEOUT');
    }, settings.connectTimeoutMs);
    socket.once('error', failed);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', failed);
      if (stream.state === 'closed') {
        socket.destroy();
        return;
      }
      socket.setNoDelay(true);
      socket.setTimeout(settings.idleTimeoutMs, () => stream.abort('AGENT_ERR_TUNNEL_IDLE'));
      stream.attach(socket);
      stream.granted(entranceWindow);
      // The accept: this end's receive window, the first credit the IT side gets.
      link.grant(this.#window);
    });
  }

  #finished(stream: TunnelStream, outcome: StreamOutcome): void {
    this.#mux.remove(stream);
    this.#logger.info(
      {
        session: stream.session,
        stream: stream.id,
        service: stream.service,
        peer: stream.peer,
        outcome,
        bytesToTarget: stream.bytesReceived,
        bytesFromTarget: stream.bytesSent,
        durationMs: Date.now() - stream.openedAt,
      },
      'tunnel stream closed',
    );
  }
}

/** Counts a stream opened (+1) or finished (-1) against its service and its IT agent. */
function holdStream(service: ServiceState, peer: string, delta: 1 | -1): void {
  service.open += delta;
  const held = (service.heldBy.get(peer) ?? 0) + delta;
  if (held === 0) service.heldBy.delete(peer);
  else service.heldBy.set(peer, held);
}

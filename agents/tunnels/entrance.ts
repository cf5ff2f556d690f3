/**
 * The IT side of the tunnels: one local listener per configured entrance (agent.yaml
 * `it.tunnels`), each accepted TCP connection a stream to `<ot-agent>/<service>`. The listeners
 * belong to the agent, not to a link: they keep listening through every relay reconnect, and a
 * client that arrives while the link or the session is down is reset at once (a prompt failure
 * its own retry logic knows), never held. One session per OT agent carries all the streams to it;
 * it is opened when the first client arrives and again after the relay or the OT agent ended it.
 */
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { DmzError, type ErrorCode } from '../../relay/protocol/errors.ts';
import { MAX_U32 } from '../../relay/protocol/limits.ts';
import { DEFAULT_STREAM_WINDOW_BYTES } from '../../relay/protocol/streams.ts';
import { StreamMux, type MuxStats, type StreamFrames, type TunnelLink } from './stream-mux.ts';
import type { HostPort, TunnelEntranceSettings } from './tunnel-config.ts';
import { TunnelStream, type StreamOutcome } from './tunnel-stream.ts';

/** What an entrance needs of the link beyond the streams: sessions. */
export interface EntranceLink extends TunnelLink {
  openSession(peer: string, filter: string): Promise<{ readonly session: number }>;
  openStream(session: number, stream: number, service: string, window: number): void;
}

/**
 * An OT agent answers a stream open within its service's connect timeout (at most 20 s, config
 * checked); one that says nothing for longer than this is gone or broken: the client is reset.
 */
export const STREAM_OPEN_TIMEOUT_MS = 30_000;

/** The relay's streams per session when its welcome does not say (its default). */
const DEFAULT_SESSION_STREAMS = 32;

export interface TunnelEntranceOptions {
  readonly entrances: readonly TunnelEntranceSettings[];
  readonly logger: Logger;
  readonly window?: number;
}

export interface EntranceStats extends MuxStats {
  /** Clients reset before their stream opened: no link or session, or the open was refused. */
  readonly refused: number;
}

export class TunnelEntrance {
  readonly #entrances: readonly TunnelEntranceSettings[];
  readonly #logger: Logger;
  readonly #window: number;
  readonly #servers = new Map<string, Server>();
  readonly #mux = new StreamMux();
  #link: EntranceLink | undefined;
  /** The session with each OT agent, open or being opened on the current link. */
  readonly #sessions = new Map<string, Promise<number>>();
  readonly #sessionPeers = new Map<number, string>();
  #nextStream = 1;
  #refused = 0;
  /** Streams each entrance holds (opening or open), by entrance name. */
  readonly #held = new Map<string, number>();

  constructor(options: TunnelEntranceOptions) {
    this.#entrances = options.entrances;
    this.#logger = options.logger;
    this.#window = options.window ?? DEFAULT_STREAM_WINDOW_BYTES;
  }

  /** Opens every listener, or none (AGENT_ERR_TUNNEL_LISTEN, naming the entrance). */
  async listen(): Promise<void> {
    for (const entrance of this.#entrances) {
      const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
        void this.#accept(entrance, socket);
      });
      server.listen({ host: entrance.listen.host, port: entrance.listen.port });
      try {
        // once() rejects when 'error' comes first (EADDRINUSE, EACCES).
        await once(server, 'listening');
      } catch (cause) {
        await this.close();
        throw new DmzError(
          'AGENT_ERR_TUNNEL_LISTEN',
          `tunnel ${entrance.name} cannot listen on ${entrance.listen.host}:${entrance.listen.port}: ${(cause as Error).message}`,
          { cause },
        );
      }
      this.#servers.set(entrance.name, server);
    }
  }

  /** Where each entrance listens (its port when configured as 0). */
  addresses(): Map<string, HostPort> {
    const addresses = new Map<string, HostPort>();
    for (const [name, server] of this.#servers) {
      const { address, port } = server.address() as AddressInfo;
      addresses.set(name, { host: address, port });
    }
    return addresses;
  }

  attach(link: EntranceLink): void {
    this.#link = link;
    this.#mux.attach(link);
  }

  detach(): void {
    this.#link = undefined;
    this.#sessions.clear();
    this.#sessionPeers.clear();
    this.#mux.detach();
  }

  /** The relay or the OT agent ended a session: its streams end, the next client opens another. */
  sessionClosed(session: number, code: string): boolean {
    const peer = this.#sessionPeers.get(session);
    if (peer === undefined) return false;
    this.#sessionPeers.delete(session);
    this.#sessions.delete(peer);
    this.#mux.sessionClosed(session, code);
    return true;
  }

  /** Where the link's stream frames for this end go (tunnel-events.ts). */
  get frames(): StreamFrames {
    return this.#mux;
  }

  stats(): EntranceStats {
    return { ...this.#mux.stats(), refused: this.#refused };
  }

  /** Stops listening and resets every client. */
  async close(): Promise<void> {
    for (const stream of [...this.#mux.streams()]) stream.ended('AGENT_ERR_TUNNEL_OFFLINE');
    const servers = [...this.#servers.values()];
    this.#servers.clear();
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  }

  async #accept(entrance: TunnelEntranceSettings, socket: Socket): Promise<void> {
    socket.setNoDelay(true);
    const quiet = () => undefined;
    socket.on('error', quiet); // until the stream takes the socket
    const link = this.#link;
    let session: number;
    try {
      if (link === undefined || link.closed) throw new DmzError('AGENT_ERR_TUNNEL_OFFLINE');
      session = await this.#sessionWith(link, entrance.peer);
      if (link !== this.#link) throw new DmzError('AGENT_ERR_TUNNEL_OFFLINE');
    } catch (error) {
      this.#refuse(entrance, socket, error instanceof DmzError ? error.code : 'AGENT_ERR_TUNNEL_OFFLINE');
      return;
    }
    if (!this.#withinShare(link, entrance)) {
      this.#refuse(entrance, socket, 'AGENT_ERR_TUNNEL_ENTRANCE_FULL');
      return;
    }
    this.#held.set(entrance.name, (this.#held.get(entrance.name) ?? 0) + 1);
    const id = this.#nextStream;
    this.#nextStream = id === MAX_U32 ? 1 : id + 1;
    const timer = setTimeout(() => {
      if (stream.state === 'opening') stream.abort('AGENT_ERR_TUNNEL_TARGET_TIMEOUT');
    }, STREAM_OPEN_TIMEOUT_MS);
    timer.unref();
    const stream = new TunnelStream({
      session,
      id,
      service: entrance.service,
      peer: entrance.peer,
      window: this.#window,
      link: this.#mux.linkFor(link, session, id),
      socketFailure: 'AGENT_ERR_TUNNEL_CLIENT_FAILED',
      onFinished: (finished, outcome) => this.#finished(entrance, finished, outcome, timer),
    });
    this.#mux.add(stream);
    socket.off('error', quiet);
    stream.attach(socket);
    link.openStream(session, id, entrance.service, this.#window);
  }

  /**
   * The entrances to one OT agent share one session, and so the relay's streams per session: each
   * keeps a fair share of them (the limit over the entrances to that agent, at least one), and one
   * takes more only while every other still has its share free. So a local process that holds
   * every connection it can on one entrance cannot starve the others.
   */
  #withinShare(link: EntranceLink, entrance: TunnelEntranceSettings): boolean {
    const capacity = link.welcome.limits?.maxStreamsPerSession ?? DEFAULT_SESSION_STREAMS;
    const siblings = this.#entrances.filter((other) => other.peer === entrance.peer);
    const share = Math.max(1, Math.floor(capacity / siblings.length));
    let held = 0;
    let reserved = 0;
    for (const other of siblings) {
      const count = this.#held.get(other.name) ?? 0;
      held += count;
      if (other !== entrance) reserved += Math.max(0, share - count);
    }
    return (this.#held.get(entrance.name) ?? 0) < share || held + reserved < capacity;
  }

  #sessionWith(link: EntranceLink, peer: string): Promise<number> {
    let session = this.#sessions.get(peer);
    if (session === undefined) {
      // The session's scope: the services of that agent, `<ot-agent>/<service>`.
      session = link.openSession(peer, `${peer}/+`).then(({ session: id }) => {
        if (this.#link === link) this.#sessionPeers.set(id, peer);
        return id;
      });
      this.#sessions.set(peer, session);
      session.catch(() => {
        if (this.#sessions.get(peer) === session) this.#sessions.delete(peer);
      });
    }
    return session;
  }

  #refuse(entrance: TunnelEntranceSettings, socket: Socket, code: ErrorCode): void {
    this.#refused++;
    this.#logger.warn({ tunnel: entrance.name, code }, 'tunnel client reset: no stream could be opened');
    socket.resetAndDestroy();
  }

  #finished(
    entrance: TunnelEntranceSettings,
    stream: TunnelStream,
    outcome: StreamOutcome,
    timer: NodeJS.Timeout,
  ): void {
    clearTimeout(timer);
    this.#mux.remove(stream);
    this.#held.set(entrance.name, (this.#held.get(entrance.name) ?? 1) - 1);
    // Refused by the relay or the OT agent, or timed out, or the link went: the client is reset
    // before its stream ever opened, as by #refuse. A client that went away itself was not.
    if (!stream.accepted && outcome !== 'AGENT_ERR_TUNNEL_CLIENT_FAILED') this.#refused++;
    this.#logger.info(
      {
        tunnel: entrance.name,
        stream: stream.id,
        outcome,
        bytesToOt: stream.bytesSent,
        bytesFromOt: stream.bytesReceived,
        durationMs: Date.now() - stream.openedAt,
      },
      'tunnel stream closed',
    );
  }
}

/**
 * A tunnel end to end in one process: the real relay (mTLS, port 0, a throwaway CA), an OT agent's
 * link with a TunnelExit, an IT agent's link with a TunnelEntrance listening on loopback, wired as
 * the agent runtime wires them (agents/runtime/agent.ts), and plain TCP helpers for the clients.
 */
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { pino } from 'pino';
import { RelayLink } from '../../../agents/link/relay-link.ts';
import { TunnelEntrance } from '../../../agents/tunnels/entrance.ts';
import { TunnelExit } from '../../../agents/tunnels/exit.ts';
import { tunnelEvents } from '../../../agents/tunnels/tunnel-events.ts';
import {
  streamsPerPeer,
  type HostPort,
  type TunnelEntranceSettings,
  type TunnelService,
} from '../../../agents/tunnels/tunnel-config.ts';
import { startTestRelay, type ConfigOverrides, type TestRelay } from '../../support/relay-harness.ts';
import { createTestPki, type TestPki } from '../../support/test-pki.ts';
import { waitFor } from '../../support/wait.ts';

export const OT_NAME = 'plc-gw';
export const IT_NAME = 'scada';

export interface TunnelPlantOptions {
  readonly services: readonly TunnelService[];
  /** Entrances to OT_NAME's services, by service name (listening on 127.0.0.1, port 0). */
  readonly entrances: readonly string[];
  readonly relay?: ConfigOverrides;
  readonly window?: number;
  readonly pki?: TestPki;
}

export interface TunnelPlant {
  readonly relay: TestRelay;
  readonly pki: TestPki;
  readonly exit: TunnelExit;
  readonly entrance: TunnelEntrance;
  /** The OT agent's current link (a new one after reconnectOt). */
  readonly ot: RelayLink;
  readonly it: RelayLink;
  readonly itSerial: string;
  readonly otSerial: string;
  /** Where the entrance for `service` listens. */
  address(service: string): HostPort;
  /** Cuts the OT agent's link (no close handshake), waits until the exit lost it, connects again. */
  reconnectOt(): Promise<void>;
  close(): Promise<void>;
}

/** An IT agent's end: its link, and a TunnelEntrance with an entrance per service of OT_NAME. */
export interface ItEnd {
  readonly link: RelayLink;
  readonly entrance: TunnelEntrance;
  readonly serial: string;
  /** Where the entrance for `service` listens. */
  address(service: string): HostPort;
  close(): Promise<void>;
}

export function service(
  name: string,
  target: HostPort,
  settings: Partial<TunnelService> = {},
): TunnelService {
  const maxStreams = settings.maxStreams ?? 16;
  return {
    name,
    target,
    allow: undefined,
    maxStreams,
    // The default of the agent's config, as it resolves one.
    maxStreamsPerPeer: streamsPerPeer(maxStreams, settings.allow),
    idleTimeoutMs: 60_000,
    connectTimeoutMs: 2_000,
    bytesPerSecond: undefined,
    ...settings,
  };
}

/** The policy of these tests: the IT agent may tunnel to every service of OT_NAME. */
export const TUNNEL_POLICY = [{ role: 'ot' }, { agent: IT_NAME, tunnel: [`${OT_NAME}/+`] }];

export async function startTunnelPlant(options: TunnelPlantOptions): Promise<TunnelPlant> {
  const pki = options.pki ?? (await createTestPki());
  const relay = await startTestRelay(pki, { policy: TUNNEL_POLICY, ...options.relay });
  const logger = pino({ level: 'silent' });
  const sessions = new Map<number, string>();
  const exit = new TunnelExit({
    services: options.services,
    logger,
    peerOf: (session) => sessions.get(session),
    ...(options.window === undefined ? {} : { window: options.window }),
  });
  const otCredentials = await pki.issueAgent('ot', OT_NAME);
  const connectOt = async (): Promise<RelayLink> => {
    const link = await RelayLink.connect(
      { url: relay.url, caPem: pki.ca.certPem, ...otCredentials },
      {
        sessionOffered: (offer) => {
          sessions.set(offer.session, offer.peer);
          return true;
        },
        sessionClosed: (closed) => {
          exit.sessionClosed(closed.session, closed.code);
          sessions.delete(closed.session);
        },
        streamOpened: (offer) => exit.streamOpened(offer),
        ...tunnelEvents(exit),
        closed: () => {
          sessions.clear();
          exit.detach();
        },
      },
    );
    exit.attach(link);
    return link;
  };
  let ot = await connectOt();
  const it = await startItEnd(pki, relay, IT_NAME, options.entrances, options.window);
  return {
    relay,
    pki,
    exit,
    entrance: it.entrance,
    get ot() {
      return ot;
    },
    it: it.link,
    itSerial: it.serial,
    otSerial: otCredentials.serialHex,
    address: (name) => it.address(name),
    async reconnectOt() {
      const gone = ot;
      gone.terminate();
      await waitFor(() => gone.closed, 'the OT link closed');
      ot = await connectOt();
    },
    async close() {
      await it.entrance.close();
      await relay.stop();
    },
  };
}

/**
 * Another IT agent `name` (the relay's policy must grant it), with entrances to `services` of
 * OT_NAME on loopback, wired as the agent runtime wires them.
 */
export async function startItEnd(
  pki: TestPki,
  relay: TestRelay,
  name: string,
  services: readonly string[],
  window?: number,
): Promise<ItEnd> {
  const entrances: TunnelEntranceSettings[] = services.map((service) => ({
    name: service,
    listen: { host: '127.0.0.1', port: 0 },
    peer: OT_NAME,
    service,
  }));
  const entrance = new TunnelEntrance({
    entrances,
    logger: pino({ level: 'silent' }),
    ...(window === undefined ? {} : { window }),
  });
  await entrance.listen();
  const credentials = await pki.issueAgent('it', name);
  const link = await RelayLink.connect(
    { url: relay.url, caPem: pki.ca.certPem, ...credentials },
    {
      sessionClosed: (closed) => entrance.sessionClosed(closed.session, closed.code),
      ...tunnelEvents(entrance),
      closed: () => entrance.detach(),
    },
  );
  entrance.attach(link);
  const addresses = entrance.addresses();
  return {
    link,
    entrance,
    serial: credentials.serialHex,
    address(service) {
      const address = addresses.get(service);
      if (address === undefined) throw new Error(`no entrance for ${service}`);
      return address;
    },
    async close() {
      await entrance.close();
      await link.close();
    },
  };
}

/** A TCP server on loopback for the OT side's target; `handle` gets each connection. */
export async function startTarget(
  handle: (socket: Socket) => void,
): Promise<{ readonly address: HostPort; readonly sockets: Set<Socket>; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    handle(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    address: { host: '127.0.0.1', port: (server.address() as AddressInfo).port },
    sockets,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Echoes every byte, and half-closes when the client does. */
export function echo(socket: Socket): void {
  socket.pipe(socket);
}

/** A client connection to an entrance, with what it received and how it ended. */
export interface TunnelClient {
  readonly socket: Socket;
  readonly received: Buffer[];
  /** Settles with `end` (FIN), the error code (ECONNRESET), or `close`. */
  readonly ended: Promise<string>;
  bytes(): number;
  text(): string;
}

export async function connectClient(address: HostPort): Promise<TunnelClient> {
  const socket = connect({ ...address, allowHalfOpen: true });
  const received: Buffer[] = [];
  let total = 0;
  socket.on('data', (chunk: Buffer) => {
    received.push(chunk);
    total += chunk.byteLength;
  });
  const ended = new Promise<string>((resolve) => {
    socket.once('end', () => resolve('end'));
    socket.once('error', (error: Error & { code?: string }) => resolve(error.code ?? error.message));
    socket.once('close', () => resolve('close'));
  });
  // An entrance that refuses at once may reset the connection before it is even reported open.
  await Promise.race([once(socket, 'connect'), ended]);
  return {
    socket,
    received,
    ended,
    bytes: () => total,
    text: () => Buffer.concat(received).toString(),
  };
}

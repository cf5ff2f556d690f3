/**
 * A tunnel end to end in one process: the real relay (mTLS, port 0, a throwaway CA), an OT agent's
 * link with a TunnelExit, an IT agent's link with a TunnelEntrance listening on loopback, wired as
 * the agent runtime wires them (agents/runtime/agent.ts), and plain TCP helpers for the clients.
 */
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { pino } from 'pino';
import { RelayLink, type LinkEvents } from '../../../agents/link/relay-link.ts';
import { TunnelEntrance } from '../../../agents/tunnels/entrance.ts';
import { TunnelExit } from '../../../agents/tunnels/exit.ts';
import type {
  HostPort,
  TunnelEntranceSettings,
  TunnelService,
} from '../../../agents/tunnels/tunnel-config.ts';
import { startTestRelay, type ConfigOverrides, type TestRelay } from '../../support/relay-harness.ts';
import { createTestPki, type TestPki } from '../../support/test-pki.ts';

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
  readonly ot: RelayLink;
  readonly it: RelayLink;
  readonly itSerial: string;
  readonly otSerial: string;
  /** Where the entrance for `service` listens. */
  address(service: string): HostPort;
  close(): Promise<void>;
}

export function service(
  name: string,
  target: HostPort,
  settings: Partial<TunnelService> = {},
): TunnelService {
  return {
    name,
    target,
    allow: undefined,
    maxStreams: 16,
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
  const entrances: TunnelEntranceSettings[] = options.entrances.map((name) => ({
    name,
    listen: { host: '127.0.0.1', port: 0 },
    peer: OT_NAME,
    service: name,
  }));
  const entrance = new TunnelEntrance({
    entrances,
    logger,
    ...(options.window === undefined ? {} : { window: options.window }),
  });
  await entrance.listen();
  const ends = (tunnels: TunnelExit | TunnelEntrance): LinkEvents => ({
    streamData: (data) => tunnels.data(data),
    streamWindow: (window) => tunnels.window(window),
    streamClosed: (closed) => tunnels.closed(closed),
    streamRefused: (refusal) => tunnels.refused(refusal),
  });
  const otCredentials = await pki.issueAgent('ot', OT_NAME);
  const ot = await RelayLink.connect(
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
      ...ends(exit),
      closed: () => exit.detach(),
    },
  );
  exit.attach(ot);
  const itCredentials = await pki.issueAgent('it', IT_NAME);
  const it = await RelayLink.connect(
    { url: relay.url, caPem: pki.ca.certPem, ...itCredentials },
    {
      sessionClosed: (closed) => entrance.sessionClosed(closed.session, closed.code),
      ...ends(entrance),
      closed: () => entrance.detach(),
    },
  );
  entrance.attach(it);
  const addresses = entrance.addresses();
  return {
    relay,
    pki,
    exit,
    entrance,
    ot,
    it,
    itSerial: itCredentials.serialHex,
    otSerial: otCredentials.serialHex,
    address(name) {
      const address = addresses.get(name);
      if (address === undefined) throw new Error(`no entrance for ${name}`);
      return address;
    },
    async close() {
      await entrance.close();
      await relay.stop();
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

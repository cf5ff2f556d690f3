/**
 * A fake relay for tests of the agent's link: real mTLS on port 0 with the test CA, but the test
 * scripts every frame it sends and when (several in one tick, ones a handler chokes on, or none at
 * all after the welcome), sees what the agent sent, and can stop reading its socket.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { decodeFrame, encodeFrame } from '../../relay/protocol/codec.ts';
import type { ToAgentFrame, ToAgentFrameOf, ToRelayFrame } from '../../relay/protocol/frames.ts';
import { SUBPROTOCOL } from '../../relay/protocol/limits.ts';
import type { TestPki } from './test-pki.ts';
import { waitFor } from './wait.ts';

/**
 * A welcome as the real relay sends it (relay/server/welcome.ts): pings at a third of the lease;
 * without the limits, as a relay older than their announcement sends it.
 */
export function welcomeFrame(
  name = 'press-7',
  leaseMs = 30_000,
  role: 'ot' | 'it' = 'ot',
): ToAgentFrameOf<'welcome'> {
  return {
    type: 'welcome',
    role,
    name,
    leaseMs,
    pingIntervalMs: Math.floor(leaseMs / 3),
    maxFrameBytes: 64 * 1024,
  };
}

/** The relay's side of one agent connection: what the agent sent, and a way to answer. */
export interface ScriptedPeer {
  readonly received: ToRelayFrame[];
  /** The agent's address as this server saw it. */
  readonly remoteAddress: string | undefined;
  /** Sends the frames corked, so they leave in one TLS record and the agent parses them in one go. */
  send(...frames: ToAgentFrame[]): void;
  /** Stops reading the agent's socket: what the agent writes backs up into its own buffers. */
  pauseReading(): void;
  resumeReading(): void;
  /** A WebSocket close with this code and reason, as the relay closes a connection. */
  close(code: number, reason: string): void;
  /** Drops the TCP connection without a WebSocket close. */
  terminate(): void;
}

export interface ScriptedRelay {
  readonly url: string;
  /** The latest agent connection, once its hello has arrived. */
  peer(): Promise<ScriptedPeer>;
  close(): Promise<void>;
}

/** Calls `onHello` on each agent's hello; it sends the welcome and whatever else the test wants. */
export async function startScriptedRelay(
  pki: TestPki,
  onHello: (peer: ScriptedPeer) => void,
): Promise<ScriptedRelay> {
  const server: Server = createServer({
    cert: pki.relay.certPem,
    key: pki.relay.keyPem,
    ca: pki.ca.certPem,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.3',
  });
  const sockets = new Set<WebSocket>();
  let connected: ScriptedPeer | undefined;
  const wss = new WebSocketServer({
    server,
    handleProtocols: (offered) => (offered.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
  });
  wss.on('connection', (socket, request) => {
    sockets.add(socket);
    const transport: Socket = request.socket;
    const peer: ScriptedPeer = {
      received: [],
      remoteAddress: transport.remoteAddress,
      send: (...frames) => {
        transport.cork();
        for (const frame of frames) socket.send(encodeFrame(frame));
        transport.uncork();
      },
      pauseReading: () => transport.pause(),
      resumeReading: () => transport.resume(),
      close: (code, reason) => socket.close(code, reason),
      terminate: () => socket.terminate(),
    };
    socket.on('error', () => undefined);
    socket.on('message', (data: Buffer) => {
      const frame = decodeFrame(data, 'toRelay');
      peer.received.push(frame);
      if (frame.type === 'hello') {
        connected = peer;
        onHello(peer);
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `wss://127.0.0.1:${port}/v1/agent`,
    peer: () => waitFor(() => connected, 'agent hello'),
    close: async () => {
      for (const socket of sockets) socket.terminate();
      await new Promise((done) => wss.close(done));
      await new Promise((done) => server.close(done));
    },
  };
}

/**
 * A TCP forwarder between agents and a real relay that can turn the relay's direction into a black
 * hole: from `silence()` on, nothing the relay writes reaches the agent (not even its FIN or RST),
 * as on a route that died or a relay host that froze, while the agent's bytes still get through.
 * TLS runs end to end through it: the relay still sees the agent's certificate.
 */
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

export interface BlackHoleProxy {
  /** The port agents connect to instead of the relay's. */
  readonly port: number;
  /** From now on, swallow everything the relay sends, on every connection, current and new. */
  silence(): void;
  close(): Promise<void>;
}

export async function startBlackHoleProxy(
  targetPort: number,
  targetHost = '127.0.0.1',
): Promise<BlackHoleProxy> {
  let silenced = false;
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
  };
  const server = createServer((agentSide) => {
    const relaySide = connect({ host: targetHost, port: targetPort });
    track(agentSide);
    track(relaySide);
    agentSide.on('data', (chunk: Buffer) => relaySide.write(chunk));
    agentSide.on('close', () => relaySide.destroy());
    relaySide.on('data', (chunk: Buffer) => {
      if (!silenced) agentSide.write(chunk);
    });
    // The relay hanging up is news the agent must not get once the hole is open.
    relaySide.on('close', () => {
      if (!silenced) agentSide.destroy();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    silence: () => {
      silenced = true;
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((done) => server.close(done));
    },
  };
}

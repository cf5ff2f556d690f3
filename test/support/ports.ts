/**
 * Ports seen from outside a process: choosing one a child process can be told to listen on, and
 * what a plain TCP connection to an address meets (a listener, or a refusal).
 */
import { connect, createServer } from 'node:net';

/**
 * A port that was free a moment ago on `host`, for a child process whose configuration must name
 * its ports up front (with port 0 the test could not know where it listens).
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ host, port: 0 }, () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port);
        else reject(new Error('listener has no port'));
      });
    });
  });
}

/** `connected`, or the error code that ended the attempt (`ECONNREFUSED`, `ETIMEDOUT`). */
export function tcpConnectOutcome(host: string, port: number, timeoutMs = 2_000): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.setTimeout(timeoutMs, () => {
      socket.destroy();
      resolve('ETIMEDOUT');
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: Error & { code?: string }) => resolve(error.code ?? error.message));
  });
}

/**
 * A bare TLS connection to the agent port that asks for the WebSocket upgrade and records what
 * comes back, for tests that must show a refused client never got as far as HTTP.
 */
import { randomBytes } from 'node:crypto';
import { connect, type ConnectionOptions } from 'node:tls';

/** TLS options, and the source address to connect from (127.0.0.0/8 all reach loopback). */
export type ProbeOptions = ConnectionOptions & { readonly localAddress?: string };
import { AGENT_PATH } from '../../relay/server/agent-listener.ts';
import { SUBPROTOCOL } from '../../relay/protocol/limits.ts';

export interface ProbeResult {
  /** The TLS handshake completed as far as the client can tell (TLS 1.3 clients finish first). */
  readonly handshake: boolean;
  /** Every byte the relay sent after the handshake: an HTTP response, WebSocket frames. */
  readonly received: string;
  /** The error that ended the connection (a TLS alert, a reset), if any. */
  readonly error: string | undefined;
}

/**
 * Connects to 127.0.0.1:`port` with `options`, sends an upgrade request once the handshake is done,
 * and resolves when the relay ends the connection, or as soon as a complete HTTP response header
 * arrived. Rejects if neither happens within `timeoutMs`.
 */
export function probeAgentPort(port: number, options: ProbeOptions, timeoutMs = 5_000): Promise<ProbeResult> {
  return new Promise((resolve, reject) => {
    let handshake = false;
    let received = '';
    let error: string | undefined;
    const socket = connect({ host: '127.0.0.1', port, ...options });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`relay neither answered nor closed within ${timeoutMs} ms`));
    }, timeoutMs);
    const finish = () => {
      clearTimeout(timer);
      resolve({ handshake, received, error });
    };
    socket.on('secureConnect', () => {
      handshake = true;
      socket.write(
        [
          `GET ${AGENT_PATH} HTTP/1.1`,
          `Host: 127.0.0.1:${port}`,
          'Upgrade: websocket',
          'Connection: Upgrade',
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
          'Sec-WebSocket-Version: 13',
          `Sec-WebSocket-Protocol: ${SUBPROTOCOL}`,
          '',
          '',
        ].join('\r\n'),
      );
    });
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (received.includes('\r\n\r\n')) {
        socket.destroy();
        finish();
      }
    });
    socket.on('error', (cause: Error & { code?: string }) => {
      error = cause.code ?? cause.message;
    });
    socket.on('close', finish);
  });
}

/**
 * A client that holds a connection open by sending almost nothing: a TLS connection to a
 * server-only TLS port that dribbles its request one byte at a time (slowloris). Bounded: it stops
 * by itself after `maxMs`. Tells when the server cut it.
 */
import { connect, type TLSSocket } from 'node:tls';

export interface SlowClientOptions {
  readonly port: number;
  readonly localAddress?: string;
  /** `body`: full headers announcing a body, then the body byte by byte; `headers`: the headers byte by byte. */
  readonly dribble: 'headers' | 'body';
  readonly intervalMs: number;
  readonly maxMs: number;
}

export interface SlowClient {
  /** The TLS handshake finished (false: the server refused before or during it). */
  readonly established: Promise<boolean>;
  /**
   * `body` only: the server has the headers and waits for the body (it answered the request's
   * `Expect: 100-continue`), so the request is in flight on the server's side.
   */
  readonly inRequest: Promise<boolean>;
  /** Resolves with the time (Date.now()) the connection closed, whoever closed it. */
  readonly closed: Promise<number>;
  /** Whether the connection is still open. */
  isOpen(): boolean;
  stop(): void;
}

const ANNOUNCED_BODY_BYTES = 20_000;

export function startSlowClient(options: SlowClientOptions): SlowClient {
  const socket: TLSSocket = connect({
    host: '127.0.0.1',
    port: options.port,
    ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
    // The tests aim at the server's handling of slow clients, not at its certificate.
    rejectUnauthorized: false,
  });
  let open = true;
  let timer: NodeJS.Timeout | undefined;
  const headers = [
    'POST /v1/enroll HTTP/1.1',
    'Host: 127.0.0.1',
    'Content-Type: application/json',
    `Content-Length: ${ANNOUNCED_BODY_BYTES}`,
    ...(options.dribble === 'body' ? ['Expect: 100-continue'] : []),
    '',
    '',
  ].join('\r\n');
  const established = new Promise<boolean>((resolve) => {
    socket.once('secureConnect', () => resolve(true));
    socket.once('close', () => resolve(false));
  });
  const closed = new Promise<number>((resolve) => {
    socket.once('close', () => {
      open = false;
      clearInterval(timer);
      resolve(Date.now());
    });
  });
  const inRequest = new Promise<boolean>((resolve) => {
    let received = '';
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (received.startsWith('HTTP/1.1 100')) resolve(true);
    });
    socket.once('close', () => resolve(false));
  });
  socket.on('error', () => undefined); // the close says it all
  socket.once('secureConnect', () => {
    let sent = 0;
    const payload = options.dribble === 'body' ? '{' : headers;
    if (options.dribble === 'body') socket.write(headers);
    timer = setInterval(() => {
      socket.write(payload.charAt(sent % payload.length) || ' ');
      sent++;
    }, options.intervalMs);
  });
  const stopAt = setTimeout(() => socket.destroy(), options.maxMs);
  stopAt.unref();
  void closed.then(() => clearTimeout(stopAt));
  return {
    established,
    inRequest,
    closed,
    isOpen: () => open,
    stop: () => socket.destroy(),
  };
}

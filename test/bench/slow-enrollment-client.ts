/**
 * Scenario B's attacker: a slowloris client on the enrollment port. It completes TLS (no
 * certificate is needed there), sends `POST /v1/enroll` headers declaring a body of
 * SLOW_ENROLLMENT.declaredBodyBytes, then one body byte every byteIntervalMs, and gives up after
 * maxDurationMs. It records who ended the connection and when, and the relay's answer, if any.
 */
import { connect, type TLSSocket } from 'node:tls';
import { ENROLLMENT_PATH } from '../../relay/protocol/enrollment.ts';
import { SLOW_ENROLLMENT } from './attack-settings.ts';

/** Bound on the TLS handshake to the enrollment port. */
const CONNECT_TIMEOUT_MS = 5_000;
/** Bytes of the relay's answer kept (its status line is what matters). */
const MAX_ANSWER_BYTES = 256;

export interface SlowClientEnd {
  /** `relay`: the relay closed or reset it; `attacker`: it reached its own time bound. */
  readonly by: 'relay' | 'attacker';
  /** From the end of the TLS handshake. */
  readonly afterMs: number;
  /** The relay's HTTP status line, if it answered before closing (e.g. 408, 503). */
  readonly answer: string | undefined;
  readonly bodyBytesSent: number;
}

export class SlowEnrollmentClient {
  /** Resolves once the connection has ended, whoever ended it. */
  readonly ended: Promise<SlowClientEnd>;
  /** performance.now() at the end of its TLS handshake. */
  readonly attachedAt: number;
  readonly #socket: TLSSocket;
  #open = true;
  #endedBy: SlowClientEnd['by'] = 'relay';

  private constructor(socket: TLSSocket, port: number) {
    this.#socket = socket;
    const attachedAt = performance.now();
    this.attachedAt = attachedAt;
    let answer = '';
    let bodyBytesSent = 0;
    const sendByte = () => {
      if (bodyBytesSent >= SLOW_ENROLLMENT.declaredBodyBytes - 1) return;
      socket.write(bodyBytesSent === 0 ? '{' : ' ');
      bodyBytesSent++;
    };
    socket.write(
      [
        `POST ${ENROLLMENT_PATH} HTTP/1.1`,
        `Host: 127.0.0.1:${port}`,
        'Content-Type: application/json',
        `Content-Length: ${SLOW_ENROLLMENT.declaredBodyBytes}`,
        '',
        '',
      ].join('\r\n'),
    );
    sendByte();
    const dribble = setInterval(sendByte, SLOW_ENROLLMENT.byteIntervalMs);
    const giveUp = setTimeout(() => this.stop(), SLOW_ENROLLMENT.maxDurationMs);
    socket.on('data', (chunk: Buffer) => {
      if (answer.length < MAX_ANSWER_BYTES) answer += chunk.toString('latin1').slice(0, MAX_ANSWER_BYTES);
    });
    socket.on('error', () => undefined); // a reset is an end like any other; 'close' reports it
    this.ended = new Promise((resolve) => {
      socket.once('close', () => {
        this.#open = false;
        clearInterval(dribble);
        clearTimeout(giveUp);
        const statusLine = answer.split('\r\n')[0];
        resolve({
          by: this.#endedBy,
          afterMs: performance.now() - attachedAt,
          answer: statusLine === '' ? undefined : statusLine,
          bodyBytesSent,
        });
      });
    });
  }

  /** Connects to 127.0.0.1:`port` and starts dribbling; resolves once the headers and first byte are out. */
  static attach(port: number): Promise<SlowEnrollmentClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({
        host: '127.0.0.1',
        port,
        minVersion: 'TLSv1.3',
        // An attacker checks nothing: it wants the relay's resources, not its identity.
        rejectUnauthorized: false,
      });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`no TLS handshake with the enrollment port within ${CONNECT_TIMEOUT_MS} ms`));
      }, CONNECT_TIMEOUT_MS);
      const fail = (error: Error) => {
        clearTimeout(timer);
        reject(new Error(`the slow client could not connect to the enrollment port: ${error.message}`));
      };
      socket.once('error', fail);
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        socket.off('error', fail);
        resolve(new SlowEnrollmentClient(socket, port));
      });
    });
  }

  /** Still attached: the relay has not closed it and it has not given up. */
  get attached(): boolean {
    return this.#open;
  }

  /** Ends it now: its time bound, or the way out of the benchmark. */
  stop(): void {
    if (this.#open) this.#endedBy = 'attacker';
    this.#socket.destroy();
  }
}

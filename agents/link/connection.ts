/**
 * Opening the agent's connection to the relay: mutually authenticated TLS with the relay's CA as
 * the only trust anchor, the protocol's WebSocket subprotocol, then hello and the relay's welcome;
 * resuming the TLS session of the last connection to the same relay with the same credentials
 * when there is one (tls-sessions.ts). What happens after the welcome is the link's (relay-link.ts).
 */
import type { ClientRequest } from 'node:http';
import type { Socket } from 'node:net';
import type { ConnectionOptions, TLSSocket } from 'node:tls';
import { WebSocket, type ClientOptions } from 'ws';
import { decodeFrame, encodeFrame } from '../../relay/protocol/codec.ts';
import { DmzError, isErrorCode } from '../../relay/protocol/errors.ts';
import type { ToAgentFrameOf } from '../../relay/protocol/frames.ts';
import {
  KEY_EXCHANGE_GROUPS,
  MAX_FRAME_BYTES,
  MIN_TLS_VERSION,
  SUBPROTOCOL,
} from '../../relay/protocol/limits.ts';
import { processTlsSessions, type SessionScope, type TlsSessionCache } from './tls-sessions.ts';

export interface RelayLinkOptions {
  /** `wss://host:port/v1/agent` */
  readonly url: string;
  readonly certPem: string;
  readonly keyPem: string;
  /** The relay's CA: the only trust anchor for the relay's server certificate. */
  readonly caPem: string;
  /** What the agent says it is in its hello (the relay logs it). */
  readonly software?: string;
  /** How long to wait for the TLS handshake and the relay's welcome. */
  readonly connectTimeoutMs?: number;
  /** The source address to connect from (tests and benchmarks spread agents over 127.0.0.x). */
  readonly localAddress?: string;
  /** Where TLS session tickets are kept between connections: the process's own cache by default. */
  readonly tlsSessions?: TlsSessionCache;
}

export type Welcome = ToAgentFrameOf<'welcome'>;

/** Ten seconds: a relay working through a reconnect storm queues handshakes for a few seconds. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_SOFTWARE = 'dmz-agent';

/**
 * The masking key of every frame the agent sends: all zeros, which ws then neither applies (an
 * XOR and a copy of every message) nor the relay's ws undoes, and which lets tunnel data go to
 * the socket as it is (relay-link.ts). RFC 6455 section 5.3 asks for an unpredictable key; what
 * the key is for (section 10.3) is that a hostile script in a browser cannot choose the bytes an
 * intermediary sees. The agent is no browser, sends only frames it built itself, and over TLS
 * the wire carries ciphertext whatever the key. A server unmasks with whatever key it is given.
 */
function zeroMask(mask: Uint8Array): void {
  mask.fill(0);
}

/** The open connection, handed over the moment the welcome has arrived. */
export interface RelayConnection {
  readonly socket: WebSocket;
  /** The TLS socket under the WebSocket, for its write buffer's 'drain'. */
  readonly transport: Socket;
  readonly welcome: Welcome;
  /** Whether TLS resumed an earlier session (a ticket) instead of a full handshake. */
  readonly tlsResumed: boolean;
}

/**
 * Connects, says hello and waits for the welcome. `attach` runs synchronously inside the welcome's
 * message event: ws emits every frame of a chunk in one go, so whatever listens for the frames sent
 * right after the welcome (and for a close) must be on the socket before that event returns.
 * Rejects with a DmzError: the relay's code when it closed the connection with one, else
 * AGENT_ERR_CONNECT_FAILED.
 */
export function connectToRelay<T>(
  options: RelayLinkOptions,
  attach: (connection: RelayConnection) => T,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (!options.url.startsWith('wss://')) {
      throw new DmzError('CONFIG_ERR_INVALID', 'the relay URL must start with wss://');
    }
    const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const sessions = options.tlsSessions ?? processTlsSessions;
    const scope: SessionScope = { url: options.url, certPem: options.certPem, caPem: options.caPem };
    const offered = sessions.sessionFor(scope);
    // Tickets arrive right after the TLS handshake, before the upgrade's answer; one is kept only
    // once the relay has welcomed us, so a refused connection's ticket is never offered again.
    let ticket: Buffer | undefined;
    let welcomed = false;
    const keepTicket = (session: Buffer) => {
      ticket = session;
      if (welcomed) sessions.remember(scope, session);
    };
    // ws hands every option on to tls.connect (`session` included) and the request to finishRequest.
    const wsOptions: ClientOptions & Pick<ConnectionOptions, 'session'> = {
      cert: options.certPem,
      key: options.keyPem,
      ca: options.caPem,
      minVersion: MIN_TLS_VERSION,
      ecdhCurve: KEY_EXCHANGE_GROUPS,
      maxPayload: MAX_FRAME_BYTES,
      perMessageDeflate: false,
      generateMask: zeroMask,
      handshakeTimeout: timeoutMs,
      ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
      ...(offered === undefined ? {} : { session: offered }),
      finishRequest: (request: ClientRequest) => {
        request.once('socket', (tlsSocket: Socket) => tlsSocket.on('session', keepTicket));
        request.end();
      },
    };
    const socket = new WebSocket(options.url, SUBPROTOCOL, wsOptions);
    let transport: Socket | undefined;
    const fail = (error: DmzError) => {
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.on('error', () => undefined); // a late error from a socket being torn down
      socket.terminate();
      reject(error);
    };
    const timer = setTimeout(
      () => fail(new DmzError('AGENT_ERR_CONNECT_FAILED', 'relay did not welcome us in time')),
      timeoutMs,
    );
    socket.once('upgrade', (response) => {
      transport = response.socket;
      // A 12-byte tunnel request or a point must not wait for the ACK of the previous write.
      transport.setNoDelay(true);
    });
    socket.once('error', (error: Error) =>
      fail(
        new DmzError('AGENT_ERR_CONNECT_FAILED', `could not connect to the relay: ${error.message}`, {
          cause: error,
        }),
      ),
    );
    socket.once('close', (code: number, reason: Buffer) => {
      const text = reason.toString();
      fail(
        new DmzError(
          isErrorCode(text) ? text : 'AGENT_ERR_CONNECT_FAILED',
          `relay closed the connection (${code} ${text})`,
        ),
      );
    });
    socket.once('open', () => {
      socket.send(encodeFrame({ type: 'hello', software: options.software ?? DEFAULT_SOFTWARE }));
    });
    socket.once('message', (data: Buffer) => {
      let welcome: Welcome;
      try {
        const frame = decodeFrame(data, 'toAgent');
        if (frame.type !== 'welcome') {
          throw new DmzError('RELAY_ERR_BAD_STATE', `expected welcome, got ${frame.type}`);
        }
        welcome = frame;
      } catch (error) {
        fail(
          error instanceof DmzError
            ? error
            : new DmzError('RELAY_ERR_MALFORMED_FRAME', 'the welcome could not be decoded', { cause: error }),
        );
        return;
      }
      if (transport === undefined) {
        fail(new DmzError('AGENT_ERR_CONNECT_FAILED', 'the WebSocket upgrade left no socket'));
        return;
      }
      clearTimeout(timer);
      socket.removeAllListeners();
      welcomed = true;
      if (ticket !== undefined) sessions.remember(scope, ticket);
      const tlsResumed = (transport as TLSSocket).isSessionReused();
      resolve(attach({ socket, transport, welcome, tlsResumed }));
    });
  });
}

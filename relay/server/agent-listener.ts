/**
 * The agent port: HTTPS with mandatory client certificates, one WebSocket route. A client without
 * a valid certificate from our CA fails the TLS handshake; one whose certificate is not an agent
 * identity is dropped before its first HTTP byte is parsed.
 */
import type { TLSSocket } from 'node:tls';
import websocket from '@fastify/websocket';
import { fastify, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { RawData, WebSocket } from 'ws';
import { CLOSE_CODE } from '../protocol/close-codes.ts';
import { DmzError, type ErrorCode } from '../protocol/errors.ts';
import { SUBPROTOCOL } from '../protocol/limits.ts';
import type { AgentConnection } from './agent-connection.ts';
import { AUDIT_EVENT } from './audit.ts';
import type { Broker } from './broker.ts';
import type { RelayConfig } from './config.ts';
import type { AgentLink } from './link.ts';
import { MessageWriter } from './message-writer.ts';
import type { RelayMetrics } from './metrics.ts';
import { verifyPeer, type VerifiedPeer } from './peer-identity.ts';
import { ConnectionGate, STALE_HANDSHAKE_MS, type GateRefusal } from './connection-gate.ts';
import type { ConnectionBudget } from './connection-budget.ts';
import type { RelayRateLimits } from './rate-limits.ts';
import type { RefusalAudit } from './refusal-audit.ts';
import { secureContextOptions, type RelayTlsMaterial } from './tls.ts';

export const AGENT_PATH = '/v1/agent';
const GATE_REASONS: Readonly<Record<GateRefusal, ErrorCode>> = {
  rate_limited: 'RELAY_ERR_RATE_LIMITED',
  address_busy: 'RELAY_ERR_BUSY',
  relay_busy: 'RELAY_ERR_BUSY',
};
/** After a close frame, how long a peer gets to answer before the socket is destroyed: revocation must bite within 1 s. */
const CLOSE_GRACE_MS = 250;

export interface AgentListenerOptions {
  readonly config: RelayConfig;
  readonly tls: RelayTlsMaterial;
  /** Session ticket keys (session-tickets.ts); a reload brings new ones. */
  readonly ticketKeys: Buffer;
  readonly broker: Broker;
  readonly limits: RelayRateLimits;
  /** Handshake slots and their queue, fitted to the file-descriptor limit. */
  readonly budget: ConnectionBudget;
  /** Where refusals anyone can cause are counted (everything before an agent is admitted). */
  readonly refusals: RefusalAudit;
  readonly metrics: RelayMetrics;
  readonly log: Logger;
  /** Serials revoked since the CRL was loaded; checked at connection time as well. */
  readonly revoked: ReadonlySet<string>;
  /**
   * Whether the relay's CA has the serial on record (PkiStore.hasCertificate). Absent (TLS material
   * without a CA behind it), every certificate that chains is taken.
   */
  readonly recorded?: (serialHex: string) => boolean;
}

export async function createAgentListener(options: AgentListenerOptions): Promise<FastifyInstance> {
  const { config, broker, limits, budget, refusals, metrics, log } = options;
  const peers = new WeakMap<TLSSocket, VerifiedPeer>();
  const upgradeDeadlines = new WeakMap<TLSSocket, NodeJS.Timeout>();
  const app = fastify({
    logger: false,
    https: {
      ...secureContextOptions(options.tls, options.ticketKeys),
      requestCert: true,
      rejectUnauthorized: true,
      handshakeTimeout: config.tls.handshakeTimeoutMs,
      // The connection gate hands each socket to TLS once it has a slot (connection-gate.ts).
      pauseOnConnect: true,
    },
    // Agents send no HTTP bodies; the WebSocket upgrade is the only request that matters.
    bodyLimit: 1024,
    requestTimeout: config.tls.handshakeTimeoutMs,
    return503OnClosing: true,
    forceCloseConnections: true,
  });

  const server = app.server;
  // Before TLS: the per-address rate limit, then a bounded number of handshakes in progress.
  const gate = ConnectionGate.install(server, {
    slots: budget.handshakesInProgress,
    // A trusted network's own budget, never beyond what the file descriptors allow overall.
    slotsPerAddress: (address) =>
      Math.min(limits.sources.budgetOf(address).handshakesInProgressPerAddress, budget.handshakesInProgress),
    // A slot covers the handshake and the upgrade: released once the WebSocket is established.
    evictStaleAfterMs: STALE_HANDSHAKE_MS,
    queue: budget.handshakeQueue,
    maxWaitMs: config.tls.handshakeTimeoutMs,
    allow: (address) => limits.allowConnection(address),
    onRefused: (address, reason) => {
      metrics.refused.labels(reason).inc();
      refusals.record(AUDIT_EVENT.agentRefused, address, GATE_REASONS[reason], reason);
    },
    onError: logUnexpected,
  });
  app.addHook('preClose', () => gate.destroyAll());
  server.on('tlsClientError', (error: Error & { code?: string }, socket: TLSSocket) => {
    // Node drops a client whose certificate fails verification without an error of its own (this
    // event then carries a generic ECONNRESET); the verification result (an OpenSSL code such as
    // CERT_REVOKED, a string despite its declared type) says what was wrong.
    const verification = socket.authorizationError as unknown as string | null;
    // A handshake cut at its timeout is told apart: under a storm, it would mean the gate let in
    // more handshakes than the relay can finish in time.
    metrics.refused.labels(error.code === 'ERR_TLS_HANDSHAKE_TIMEOUT' ? 'handshake_timeout' : 'tls').inc();
    refusals.record(
      AUDIT_EVENT.agentRefused,
      gate.addressOf(socket),
      'tls',
      verification ?? error.code ?? 'handshake failed',
    );
  });
  // Runs before the HTTP parser sees a byte: an unverifiable identity never reaches Fastify. A
  // resumed TLS session is checked here like a full handshake: OpenSSL re-checks neither the CRL
  // nor the certificate's dates when it resumes, verifyPeer does.
  server.prependListener('secureConnection', (socket: TLSSocket) => {
    try {
      const peer = verifyPeer(socket, config.trustDomain, options.revoked);
      // The CRL can only name what the CA knows of: a certificate issued after the backup a
      // restored store came from chains to the CA yet is beyond `dmz-pki revoke`, so it is refused.
      if (options.recorded?.(peer.serialHex) === false) throw new DmzError('RELAY_ERR_CERT_UNKNOWN');
      peers.set(socket, peer);
      metrics.agentHandshakes.labels(socket.isSessionReused() ? 'resumed' : 'full').inc();
      // An authenticated connection is for one WebSocket, asked for at once: one that has not
      // upgraded within the handshake timeout is holding a descriptor for nothing, and is cut.
      const deadline = setTimeout(() => socket.destroy(), config.tls.handshakeTimeoutMs);
      deadline.unref();
      upgradeDeadlines.set(socket, deadline);
      socket.once('close', () => clearTimeout(deadline));
    } catch (error) {
      const code = error instanceof DmzError ? error.code : 'RELAY_ERR_IDENTITY';
      metrics.refused.labels('identity').inc();
      refusals.record(AUDIT_EVENT.agentRefused, gate.addressOf(socket), code, (error as Error).message, {
        serial: socket.getPeerX509Certificate()?.serialNumber,
      });
      socket.destroy();
    }
  });

  await app.register(websocket, {
    options: {
      maxPayload: config.limits.maxFrameBytes,
      perMessageDeflate: false,
      handleProtocols: (offered) => (offered.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
    },
  });

  // Anything but the upgrade is answered and the connection closed: no keep-alive on this port.
  app.addHook('onSend', async (_request, reply) => {
    void reply.header('connection', 'close');
  });

  app.get(AGENT_PATH, { websocket: true }, (socket, request) => {
    const tlsSocket = request.raw.socket as TLSSocket;
    clearTimeout(upgradeDeadlines.get(tlsSocket));
    gate.release(tlsSocket);
    const peer = peers.get(tlsSocket);
    if (peer === undefined || socket.protocol !== SUBPROTOCOL) {
      socket.close(
        CLOSE_CODE.protocolError,
        peer === undefined ? 'RELAY_ERR_IDENTITY' : 'RELAY_ERR_UNSUPPORTED',
      );
      return;
    }
    // Verified at the handshake, perhaps before a revocation that has landed since.
    if (options.revoked.has(peer.serialHex)) {
      metrics.refused.labels('identity').inc();
      refusals.record(AUDIT_EVENT.agentRefused, gate.addressOf(tlsSocket), 'RELAY_ERR_REVOKED', undefined, {
        agent: peer.identity.name,
        serial: peer.serialHex,
      });
      socket.close(CLOSE_CODE.policyViolation, 'RELAY_ERR_REVOKED');
      return;
    }
    const link = createLink(socket, tlsSocket, peer, config.limits.maxQueuedBytesPerConsumer);
    const connection = broker.attach(link);
    if (connection === undefined) return;
    socket.on('message', (data: RawData, isBinary: boolean) => {
      receive(connection, data, isBinary);
    });
    socket.on('close', () => broker.detach(connection));
    socket.on('error', (error: Error & { code?: string }) => {
      log.debug({ err: error, agent: peer.identity.name }, 'websocket error');
      // ws enforces maxPayload itself (closing with 1009) before the codec sees the frame.
      if (error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
        broker.disconnect(connection, CLOSE_CODE.messageTooBig, 'RELAY_ERR_FRAME_TOO_LARGE');
      }
    });
  });

  function receive(connection: AgentConnection, data: RawData, isBinary: boolean): void {
    const bytes = data as Buffer;
    if (!isBinary) {
      broker.refuseFrame(connection, 'RELAY_ERR_MALFORMED_FRAME', 'text frames are not part of the protocol');
      broker.disconnect(connection, CLOSE_CODE.protocolError, 'RELAY_ERR_MALFORMED_FRAME');
      return;
    }
    limits
      .allowFrame(connection.name, bytes.byteLength)
      .then(async (allowed) => {
        if (allowed) {
          broker.receive(connection, bytes);
          return;
        }
        broker.refuseFrame(connection, 'RELAY_ERR_RATE_LIMITED');
        if (!(await limits.recordViolation(connection.name))) {
          broker.disconnect(connection, CLOSE_CODE.tryAgainLater, 'RELAY_ERR_RATE_LIMITED');
        }
      })
      .catch(logUnexpected);
  }

  /** A bug here must be logged, never an unhandled rejection that takes every agent down with it. */
  function logUnexpected(error: unknown): void {
    log.error({ err: error }, 'unexpected failure on the agent listener');
  }

  return app;
}

function createLink(
  socket: WebSocket,
  tlsSocket: TLSSocket,
  peer: VerifiedPeer,
  maxQueuedBytes: number,
): AgentLink {
  const writer = new MessageWriter(socket, tlsSocket, maxQueuedBytes);
  return {
    identity: peer.identity,
    serialHex: peer.serialHex,
    remoteAddress: tlsSocket.remoteAddress ?? 'unknown',
    send: (message) => writer.send(message),
    // What the socket holds unsent (corked writes included) and what ws holds back: exact.
    bufferedBytes: () => socket.bufferedAmount,
    sendBulk: (message) => writer.sendBulk(message),
    bulkBytes: () => writer.bulkBytes,
    close(code, reason) {
      socket.close(code, reason);
      setTimeout(() => socket.terminate(), CLOSE_GRACE_MS).unref();
    },
  };
}

/**
 * The relay core: admits authenticated agents, decodes their frames, checks state and policy, and
 * routes. It knows nothing of sockets (see link.ts). Every handler checks the connection's state
 * first, then the frame's fields, then policy, then acts.
 */
import type { Logger } from 'pino';
import { CLOSE_CODE, type CloseCode } from '../protocol/close-codes.ts';
import { decodeFrame } from '../protocol/codec.ts';
import { DmzError, ERROR_MESSAGES, type ErrorCode } from '../protocol/errors.ts';
import type { ToRelayFrame } from '../protocol/frames.ts';
import { boundMessage } from '../protocol/wire-text.ts';
import { AgentConnection } from './agent-connection.ts';
import { AUDIT_EVENT, type AuditLog } from './audit.ts';
import { checkLiveness } from './liveness.ts';
import { enforcePolicy, type PolicyEnforcement } from './policy-enforcement.ts';
import type { RelayConfig } from './config.ts';
import type { AgentLink } from './link.ts';
import type { RelayMetrics } from './metrics.ts';
import type { Policy } from './policy.ts';
import type { CertificateRenewer, RelayContext } from './context.ts';
import { renewCertificate } from './renewal-handler.ts';
import { PendingRequests } from './requests.ts';
import { routePublish, routeRequest, routeResponse } from './routing.ts';
import {
  acceptSession,
  addSubscription,
  closeSession,
  endSession,
  openSession,
  removeSubscription,
} from './session-handlers.ts';
import { SessionTable } from './sessions.ts';
import { Tunnels } from './tunnels.ts';
import { welcomeFrame } from './welcome.ts';

/** Decode failures after which the stream cannot be trusted to be in sync: close (RFC 6455 7.4.1). */
const PROTOCOL_VIOLATIONS: ReadonlySet<ErrorCode> = new Set([
  'RELAY_ERR_MALFORMED_FRAME',
  'RELAY_ERR_UNKNOWN_FRAME',
  'RELAY_ERR_FRAME_TOO_LARGE',
]);

export interface BrokerOptions {
  readonly config: RelayConfig;
  readonly policy: Policy;
  readonly audit: AuditLog;
  readonly metrics: RelayMetrics;
  readonly log: Logger;
  readonly now?: () => number;
  readonly renewer?: CertificateRenewer;
}

export class Broker {
  readonly #context: RelayContext;
  readonly #disconnect = (connection: AgentConnection, closeCode: CloseCode, reason: ErrorCode): void =>
    this.disconnect(connection, closeCode, reason);

  constructor(options: BrokerOptions) {
    const context = {
      config: options.config,
      policy: options.policy,
      audit: options.audit,
      metrics: options.metrics,
      log: options.log,
      now: options.now ?? Date.now,
      agents: new Map<string, AgentConnection>(),
      sessions: new SessionTable(),
      requests: new PendingRequests(),
      renewer: options.renewer,
    };
    this.#context = Object.assign(context, { tunnels: new Tunnels(context) });
    const largest = (measure: (connection: AgentConnection) => number) => () => {
      let most = 0;
      for (const connection of this.#context.agents.values()) most = Math.max(most, measure(connection));
      return most;
    };
    options.metrics.observeQueues(
      largest((connection) => connection.link.bufferedBytes()),
      largest((connection) => connection.link.bulkBytes()),
    );
  }

  get agentCount(): number {
    return this.#context.agents.size;
  }

  get sessionCount(): number {
    return this.#context.sessions.size;
  }

  get streamCount(): number {
    return this.#context.tunnels.size;
  }

  /** Admits a TLS-authenticated agent, or closes it when policy names it nowhere. */
  attach(link: AgentLink): AgentConnection | undefined {
    const { identity } = link;
    if (!this.#context.policy.admits(identity)) {
      this.#context.metrics.refused.labels('policy').inc();
      this.#context.audit.record(AUDIT_EVENT.agentRefused, {
        agent: identity.name,
        role: identity.role,
        serial: link.serialHex,
        address: link.remoteAddress,
        reason: 'RELAY_ERR_FORBIDDEN',
      });
      link.close(CLOSE_CODE.policyViolation, 'RELAY_ERR_FORBIDDEN');
      return undefined;
    }
    const previous = this.#context.agents.get(identity.name);
    if (previous !== undefined) this.disconnect(previous, CLOSE_CODE.replaced, 'RELAY_ERR_REPLACED');
    const { limits } = this.#context.config;
    const connection: AgentConnection = new AgentConnection(
      link,
      { maxQueuedBytes: limits.maxQueuedBytesPerConsumer, slowConsumerGraceMs: limits.slowConsumerGraceMs },
      this.#context.now,
      () => this.disconnect(connection, CLOSE_CODE.tryAgainLater, 'RELAY_ERR_SLOW_CONSUMER'),
    );
    this.#context.agents.set(identity.name, connection);
    this.#context.metrics.connections.inc();
    this.#context.audit.record(AUDIT_EVENT.agentConnected, {
      agent: identity.name,
      role: identity.role,
      serial: link.serialHex,
      address: link.remoteAddress,
    });
    return connection;
  }

  /** One binary message from an agent, already past the rate limits. */
  receive(connection: AgentConnection, data: Uint8Array): void {
    if (connection.state === 'closed') return;
    connection.lastSeen = this.#context.now();
    this.#context.metrics.framesIn.inc();
    let frame: ToRelayFrame | undefined;
    try {
      frame = decodeFrame(data, 'toRelay', this.#context.config.limits.maxFrameBytes);
      if ((connection.state === 'awaitingHello') !== (frame.type === 'hello')) {
        this.#refuseOutOfOrder(connection, frame);
        return;
      }
      this.#dispatch(connection, frame);
    } catch (error) {
      this.#fail(connection, error, frame);
    }
  }

  /** Tells an agent one of its frames was refused before it reached the core (rate limits). */
  refuseFrame(connection: AgentConnection, code: ErrorCode, message: string = ERROR_MESSAGES[code]): void {
    if (connection.state !== 'closed') this.#sendError(connection, code, message);
  }

  /** The transport saw the agent go away. */
  detach(connection: AgentConnection): void {
    this.#teardown(connection, 'RELAY_ERR_SESSION_CLOSED', 'connection closed by agent');
  }

  /** Closes an agent's connection, ending its sessions on both sides. */
  disconnect(connection: AgentConnection, closeCode: CloseCode, reason: ErrorCode): void {
    if (connection.state === 'closed') return;
    this.#context.metrics.disconnects.labels(reason).inc();
    this.#teardown(connection, reason, ERROR_MESSAGES[reason]);
    connection.link.close(closeCode, reason);
  }

  /** Closes every live connection whose certificate serial is in `serials`; returns how many. */
  disconnectSerials(serials: ReadonlySet<string>): number {
    let count = 0;
    for (const connection of [...this.#context.agents.values()]) {
      if (!serials.has(connection.link.serialHex)) continue;
      this.disconnect(connection, CLOSE_CODE.policyViolation, 'RELAY_ERR_REVOKED');
      count++;
    }
    return count;
  }

  /** Swaps in a new policy, cutting what it no longer allows and keeping everything else. */
  applyPolicy(policy: Policy): PolicyEnforcement & { readonly streamsClosed: number } {
    const enforced = enforcePolicy(this.#context, policy, this.#disconnect);
    return { ...enforced, streamsClosed: this.#context.tunnels.enforcePolicy() };
  }

  /** Periodic upkeep: pings, lapsed leases, lease renewal, stalled consumers. */
  tick(): void {
    checkLiveness(this.#context, this.#disconnect);
  }

  /** Closes every connection (relay shutdown). */
  shutdown(): void {
    for (const connection of [...this.#context.agents.values()]) {
      this.disconnect(connection, CLOSE_CODE.goingAway, 'RELAY_ERR_SHUTTING_DOWN');
    }
  }

  #dispatch(connection: AgentConnection, frame: ToRelayFrame): void {
    switch (frame.type) {
      case 'hello':
        this.#hello(connection);
        return;
      case 'sessionOpen':
        openSession(this.#context, connection, frame);
        return;
      case 'sessionAccept':
        acceptSession(this.#context, connection, frame);
        return;
      case 'sessionClose':
        closeSession(this.#context, connection, frame);
        return;
      case 'subscribe':
        addSubscription(this.#context, connection, frame);
        return;
      case 'unsubscribe':
        removeSubscription(this.#context, connection, frame);
        return;
      case 'publish':
        routePublish(this.#context, connection, frame);
        return;
      case 'request':
        routeRequest(this.#context, connection, frame);
        return;
      case 'response':
        routeResponse(this.#context, connection, frame);
        return;
      case 'ping':
        connection.outbound.sendControl({ type: 'pong', nonce: frame.nonce });
        return;
      case 'pong':
        return; // receive() already noted the agent is alive.
      case 'renew':
        renewCertificate(this.#context, connection, frame);
        return;
      case 'streamOpen':
        this.#context.tunnels.open(connection, frame);
        return;
      case 'streamData':
        this.#context.tunnels.data(connection, frame);
        return;
      case 'streamWindow':
        this.#context.tunnels.window(connection, frame);
        return;
      case 'streamClose':
        this.#context.tunnels.close(connection, frame);
        return;
    }
  }

  #hello(connection: AgentConnection): void {
    connection.state = 'ready';
    connection.outbound.sendControl(welcomeFrame(connection, this.#context.config));
  }

  #teardown(connection: AgentConnection, code: ErrorCode, message: string): void {
    if (connection.state === 'closed') return;
    connection.state = 'closed';
    if (this.#context.agents.get(connection.name) === connection)
      this.#context.agents.delete(connection.name);
    this.#context.metrics.connections.dec();
    for (const session of [...connection.sessions.values()]) {
      endSession(this.#context, session, code, `${connection.name}: ${message}`, connection);
    }
    this.#context.audit.record(AUDIT_EVENT.agentDisconnected, {
      agent: connection.name,
      role: connection.role,
      serial: connection.link.serialHex,
      reason: code,
    });
  }

  #refuseOutOfOrder(connection: AgentConnection, frame: ToRelayFrame): void {
    const message = frame.type === 'hello' ? 'hello already received' : 'the first frame must be hello';
    this.#sendError(connection, 'RELAY_ERR_BAD_STATE', message);
    this.disconnect(connection, CLOSE_CODE.protocolError, 'RELAY_ERR_BAD_STATE');
  }

  /** Turns a handler's failure into an error frame (and a close for protocol violations). */
  #fail(connection: AgentConnection, error: unknown, frame: ToRelayFrame | undefined): void {
    const known = error instanceof DmzError;
    const code: ErrorCode = known ? error.code : 'RELAY_ERR_INTERNAL';
    const message = boundMessage(known ? error.message : ERROR_MESSAGES.RELAY_ERR_INTERNAL);
    if (!known) this.#context.log.error({ err: error, agent: connection.name }, 'frame handler failed');
    if (frame?.type === 'request') {
      connection.outbound.sendControl({
        type: 'response',
        session: frame.session,
        id: frame.id,
        error: { code, message },
      });
      this.#context.metrics.frameErrors.labels(code).inc();
      return;
    }
    const ref = frame !== undefined && 'ref' in frame ? frame.ref : undefined;
    const session = frame !== undefined && 'session' in frame ? frame.session : undefined;
    const stream = frame !== undefined && 'stream' in frame ? frame.stream : undefined;
    this.#sendError(connection, code, message, ref, session, stream);
    if (PROTOCOL_VIOLATIONS.has(code)) {
      const closeCode =
        code === 'RELAY_ERR_FRAME_TOO_LARGE' ? CLOSE_CODE.messageTooBig : CLOSE_CODE.protocolError;
      this.disconnect(connection, closeCode, code);
    }
  }

  #sendError(
    connection: AgentConnection,
    code: ErrorCode,
    message: string,
    ref?: number,
    session?: number,
    stream?: number,
  ): void {
    this.#context.metrics.frameErrors.labels(code).inc();
    connection.outbound.sendControl({
      type: 'error',
      code,
      message: boundMessage(message),
      ...(ref === undefined ? {} : { ref }),
      ...(session === undefined ? {} : { session }),
      ...(stream === undefined ? {} : { stream }),
    });
  }
}

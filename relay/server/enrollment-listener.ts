/**
 * The enrollment port: server-only TLS (a new agent has no certificate yet) and one route,
 * `POST /v1/enroll` with a one-time token and a CSR. Anyone can reach it, so it is kept narrow:
 * rate limits before any crypto, a small body cap, a strict schema, and answers that carry only a
 * stable code and the catalog message. What exactly went wrong goes to the audit log.
 */
import type { SecureContextOptions, TLSSocket } from 'node:tls';
import { fastify, type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import type { CertificateIssuer } from '../../pki/issuance.ts';
import {
  ENROLLMENT_PATH,
  EnrollmentRefusalSchema,
  EnrollmentRequestSchema,
  EnrollmentResponseSchema,
  MAX_ENROLLMENT_REQUEST_BYTES,
  type EnrollmentRefusal,
  type EnrollmentRequest,
  type EnrollmentResponse,
} from '../protocol/enrollment.ts';
import { KEY_EXCHANGE_GROUPS, MIN_TLS_VERSION } from '../protocol/limits.ts';
import { DmzError, ERROR_MESSAGES, type ErrorCode } from '../protocol/errors.ts';
import { AUDIT_EVENT, type AuditLog } from './audit.ts';
import { ConnectionGate, tcpSocketOf, type GateRefusal } from './connection-gate.ts';
import type { RelayMetrics } from './metrics.ts';
import type { RefusalAudit } from './refusal-audit.ts';

export interface EnrollmentListenerOptions {
  readonly issuer: CertificateIssuer;
  /**
   * `certPem` is the chain: the relay's server certificate, then the CA certificate. A new agent
   * trusts nothing but the CA fingerprint in its token, so it must be sent the CA to pin it.
   */
  readonly tls: { readonly certPem: string; readonly keyPem: string };
  readonly limits: EnrollmentLimits;
  readonly audit: AuditLog;
  /** Where refusals anyone can cause (rate limits, connection limits) are counted. */
  readonly refusals: RefusalAudit;
  /** Enrollment outcomes are counted here when given (the relay's /metrics). */
  readonly metrics?: RelayMetrics;
  readonly log: Logger;
  /** The TLS handshake, and then the whole request (headers and body), must each finish within it. */
  readonly handshakeTimeoutMs: number;
}

export interface EnrollmentLimits {
  readonly perAddressPerMinute: number;
  readonly perMinute: number;
  /** TCP connections open at once, overall and from one address (file descriptors, handshakes). */
  readonly connections: number;
  readonly connectionsPerAddress: number;
}

export interface EnrollmentListener {
  readonly app: FastifyInstance;
  /**
   * Stops listening and returns within CLOSE_GRACE_MS whatever clients do: connections still
   * sending their request are cut at once, and an enrollment being signed gets the grace to finish
   * (its token is already spent, so it must get its certificate).
   */
  close(): Promise<void>;
  /** A reissued server certificate for new handshakes; connections open keep theirs. */
  reloadCertificate(tls: EnrollmentListenerOptions['tls']): void;
}

/** The TLS context options, the same at creation and at every reload. */
function enrollmentContextOptions(tls: EnrollmentListenerOptions['tls']): SecureContextOptions {
  return {
    // Leaf first, then the CA (RFC 8446 section 4.4.2 lets a server send the root).
    cert: tls.certPem,
    key: tls.keyPem,
    minVersion: MIN_TLS_VERSION,
    ecdhCurve: KEY_EXCHANGE_GROUPS,
  };
}

/** The HTTP status for each code the port answers with; anything else becomes a 500. */
export const ENROLLMENT_STATUS = {
  PKI_ERR_REQUEST_INVALID: 400,
  PKI_ERR_CSR_INVALID: 400,
  PKI_ERR_CSR_TOO_LARGE: 400,
  PKI_ERR_CSR_SIGNATURE: 400,
  PKI_ERR_CSR_KEY: 400,
  PKI_ERR_TOKEN_INVALID: 401,
  PKI_ERR_TOKEN_EXPIRED: 401,
  PKI_ERR_TOKEN_UNKNOWN: 401,
  PKI_ERR_TOKEN_USED: 409,
  PKI_ERR_TOKEN_REVOKED: 409,
  PKI_ERR_REQUEST_TOO_LARGE: 413,
  PKI_ERR_RATE_LIMITED: 429,
  PKI_ERR_ENROLLMENT_FAILED: 500,
} as const satisfies Partial<Record<ErrorCode, number>>;
type RefusalCode = keyof typeof ENROLLMENT_STATUS;

/** Every limit counts per minute. */
const RATE_WINDOW_SECONDS = 60;
/**
 * The headers OWASP's REST Security Cheat Sheet ("Security Headers") asks of an API, which
 * testssl.sh's audit checks for (test/system/tls-audit.test.ts: without them it rates the port LOW
 * for HSTS and MEDIUM for security headers). Only agents talk to this port, but a browser pointed
 * at it must not cache a token's answer, frame it, sniff it into something runnable, or fall back
 * to plain HTTP for a year (RFC 6797).
 */
export const ENROLLMENT_RESPONSE_HEADERS = {
  'strict-transport-security': 'max-age=31536000',
  'cache-control': 'no-store',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
} as const;
/**
 * TCP connections allowed per address for each enrollment it may make. An enrollment needs one
 * (agents/enroll.ts sends its request over the connection it pinned the CA on); three leave room
 * for a few retries after a dropped connection or a timeout. Counted before TLS, so a flood of
 * handshakes (each costs the relay an RSA signature) is cut before it costs anything.
 */
const CONNECTIONS_PER_ENROLLMENT = 3;
const GLOBAL_RATE_KEY = 'all';
const PEM_CERTIFICATE_BEGIN = /-----BEGIN CERTIFICATE-----/g;
/** How deep to follow `cause` when writing a refusal's reason to the audit log. */
const MAX_CAUSE_DEPTH = 4;
/**
 * How long closing waits for enrollments already being signed: a signature takes milliseconds and
 * the store's writes a few more; two seconds is ample, and bounds the relay's drain.
 */
export const CLOSE_GRACE_MS = 2_000;
const GATE_REASONS: Readonly<Record<GateRefusal, string>> = {
  rate_limited: 'per-address connection rate limit reached',
  address_busy: 'per-address limit on open connections reached',
  relay_busy: 'enrollment port at its limit on open connections',
};

export function createEnrollmentListener(options: EnrollmentListenerOptions): EnrollmentListener {
  const { issuer, audit, refusals, metrics, log, tls, handshakeTimeoutMs } = options;
  if ((tls.certPem.match(PEM_CERTIFICATE_BEGIN) ?? []).length < 2) {
    // Without the CA in the chain no agent could pin it: every enrollment would fail, so fail here.
    throw new DmzError('PKI_ERR_CERT_INVALID', 'the enrollment listener needs its certificate and the CA');
  }
  const perAddress = new RateLimiterMemory({
    points: options.limits.perAddressPerMinute,
    duration: RATE_WINDOW_SECONDS,
  });
  const overall = new RateLimiterMemory({ points: options.limits.perMinute, duration: RATE_WINDOW_SECONDS });
  const connections = new RateLimiterMemory({
    points: options.limits.perAddressPerMinute * CONNECTIONS_PER_ENROLLMENT,
    duration: RATE_WINDOW_SECONDS,
  });

  const app = fastify({
    logger: false,
    https: {
      ...enrollmentContextOptions(tls),
      // Server-only TLS: an agent enrolling has no certificate to show.
      requestCert: false,
      handshakeTimeout: handshakeTimeoutMs,
      // The connection gate hands each socket to TLS once it has a slot (connection-gate.ts).
      pauseOnConnect: true,
    },
    bodyLimit: MAX_ENROLLMENT_REQUEST_BYTES,
    // Node checks these only every 30 s and not while a body arrives; the request deadline below
    // is what holds. They stay as a second line.
    requestTimeout: handshakeTimeoutMs,
    connectionTimeout: handshakeTimeoutMs,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    exposeHeadRoutes: false,
    return503OnClosing: true,
    // Closing (the last token spent, in auto mode) drops idle connections only: the enrollment
    // that spent that token is still in flight and must get its certificate.
    forceCloseConnections: 'idle',
    // Fastify's defaults coerce types and silently drop unknown keys; the contract says refuse them.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false } },
  });

  // Before TLS: a source that connects too often, or holds too many connections, is dropped
  // before the handshake; so is everyone once the port holds its limit of connections.
  const gate = ConnectionGate.install(app.server, {
    slots: options.limits.connections,
    slotsPerAddress: () => options.limits.connectionsPerAddress,
    queue: 0,
    maxWaitMs: 0,
    allow: async (address) => (await limitedBy(connections, address, '')) === undefined,
    onRefused: (address, reason) =>
      refusals.record(AUDIT_EVENT.enrollmentRefused, address, GATE_REASONS[reason], undefined, {
        code: 'PKI_ERR_RATE_LIMITED',
      }),
    onError: (error) => log.error({ err: error }, 'enrollment connection gate failed'),
  });

  // The whole request must arrive within the deadline: Node's own request timeout is checked
  // only every 30 s and never while a body dribbles in, one byte at a time.
  const receiving = new Map<TLSSocket, NodeJS.Timeout>();
  const signing = new Set<TLSSocket>();
  app.server.on('secureConnection', (socket: TLSSocket) => {
    const deadline = setTimeout(() => socket.destroy(), handshakeTimeoutMs);
    deadline.unref();
    receiving.set(socket, deadline);
    socket.once('close', () => {
      clearTimeout(deadline);
      receiving.delete(socket);
      signing.delete(socket);
    });
  });
  app.addHook('preValidation', async (request, reply) => {
    const socket = request.raw.socket as TLSSocket;
    clearTimeout(receiving.get(socket));
    receiving.delete(socket);
    signing.add(socket);
    // One request per connection: a connection cannot outlive its one deadline.
    void reply.header('connection', 'close');
  });

  function refuse(
    reply: FastifyReply,
    address: string,
    code: RefusalCode,
    reason: string,
    audited = true,
  ): FastifyReply {
    if (audited) audit.record(AUDIT_EVENT.enrollmentRefused, { code, address, reason });
    metrics?.enrollments
      .labels(
        code === 'PKI_ERR_RATE_LIMITED'
          ? 'rate_limited'
          : code === 'PKI_ERR_ENROLLMENT_FAILED'
            ? 'failed'
            : 'refused',
      )
      .inc();
    const body: EnrollmentRefusal = { code, message: ERROR_MESSAGES[code] };
    return reply.code(ENROLLMENT_STATUS[code]).send(body);
  }

  // Framework refusals: JSON that does not parse, a wrong content type, a body over the cap or
  // outside the schema. Validation messages name the field and the rule, never the value.
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const code: RefusalCode =
      error.statusCode === 413
        ? 'PKI_ERR_REQUEST_TOO_LARGE'
        : error.validation !== undefined || (error.statusCode ?? 500) < 500
          ? 'PKI_ERR_REQUEST_INVALID'
          : 'PKI_ERR_ENROLLMENT_FAILED';
    if (code === 'PKI_ERR_ENROLLMENT_FAILED') log.error({ err: error }, 'enrollment request failed');
    const reason = error.validation === undefined ? (error.code ?? 'error') : error.message;
    return refuse(reply, request.ip, code, reason);
  });
  // Nothing else is served, and a scanner learns nothing from the answer.
  app.setNotFoundHandler((_request, reply) => reply.code(404).send());
  // On every answer, refusals and 404s included (onSend runs for each).
  app.addHook('onSend', async (_request, reply) => {
    void reply.headers(ENROLLMENT_RESPONSE_HEADERS);
  });

  app.post<{ Body: EnrollmentRequest }>(
    ENROLLMENT_PATH,
    {
      schema: {
        body: EnrollmentRequestSchema,
        response: {
          200: EnrollmentResponseSchema,
          '4xx': EnrollmentRefusalSchema,
          '5xx': EnrollmentRefusalSchema,
        },
      },
      // onRequest runs before the body is read: a limited client costs no parsing and no crypto.
      onRequest: async (request, reply) => {
        const limited =
          (await limitedBy(perAddress, request.ip, 'per-address enrollment rate limit reached')) ??
          (await limitedBy(overall, GLOBAL_RATE_KEY, 'global enrollment rate limit reached'));
        if (limited === undefined) return undefined;
        reply.header('retry-after', Math.max(1, Math.ceil(limited.retryAfterMs / 1000)));
        refusals.record(AUDIT_EVENT.enrollmentRefused, request.ip, limited.reason, undefined, {
          code: 'PKI_ERR_RATE_LIMITED',
        });
        return refuse(reply, request.ip, 'PKI_ERR_RATE_LIMITED', limited.reason, false);
      },
    },
    async (request, reply) => {
      const address = request.ip;
      try {
        const issued = await issuer.enroll(request.body.token, request.body.csr);
        audit.record(AUDIT_EVENT.enrollmentSucceeded, {
          name: issued.identity.name,
          role: issued.identity.role,
          serial: issued.serialHex,
          notAfter: issued.notAfter.toISOString(),
          address,
        });
        metrics?.enrollments.labels('succeeded').inc();
        const body: EnrollmentResponse = { certificate: issued.certPem, ca: issued.caPem };
        return await reply.code(200).send(body);
      } catch (error) {
        if (error instanceof DmzError && isRefusalCode(error.code)) {
          return refuse(reply, address, error.code, reasonOf(error));
        }
        // Not a refusal but a fault of ours (the store, the CA key): the peer learns only that.
        log.error({ err: error }, 'enrollment failed');
        const internal = error instanceof DmzError ? `${error.code}: ` : '';
        return refuse(reply, address, 'PKI_ERR_ENROLLMENT_FAILED', internal + reasonOf(error));
      }
    },
  );

  return {
    app,
    reloadCertificate(next) {
      // Always the full context set: setSecureContext resets whatever is left out.
      app.server.setSecureContext(enrollmentContextOptions(next));
    },
    async close() {
      const closed = app.close();
      // Clients still in their handshake or their request are cut now: closing waits on no client.
      gate.destroyAll((socket) => [...signing].some((busy) => tcpSocketOf(busy) === socket));
      const graceOver = await Promise.race([
        closed.then(() => false),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(true), CLOSE_GRACE_MS).unref()),
      ]);
      if (graceOver) {
        log.warn('enrollments still being signed when the enrollment port closed: cut');
        gate.destroyAll();
      }
      await closed;
    },
  };
}

function isRefusalCode(code: ErrorCode): code is RefusalCode {
  return Object.hasOwn(ENROLLMENT_STATUS, code);
}

interface RateLimited {
  readonly reason: string;
  readonly retryAfterMs: number;
}

/** Consumes a point; when the limit is reached, says so with `reason` and for how long. */
async function limitedBy(
  limiter: RateLimiterMemory,
  key: string,
  reason: string,
): Promise<RateLimited | undefined> {
  try {
    await limiter.consume(key);
    return undefined;
  } catch (rejection) {
    // A RateLimiterRes means "limited"; anything else is a bug worth surfacing.
    if (!(rejection instanceof RateLimiterRes)) throw rejection;
    return { reason, retryAfterMs: rejection.msBeforeNext };
  }
}

/** The error's message and its causes' ("enrollment token is invalid: signature verification failed"). */
function reasonOf(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current instanceof Error && depth < MAX_CAUSE_DEPTH; depth += 1) {
    parts.push(current.message);
    current = current.cause;
  }
  return parts.length === 0 ? String(error) : parts.join(': ');
}

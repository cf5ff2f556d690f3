/**
 * A real CA state directory (made with initializeState, as `dmz-pki init` does) and its enrollment
 * listener on port 0, with the audit log recorded in memory, for enrollment tests on both sides.
 */
import { request } from 'node:https';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { CertificateIssuer } from '../../pki/issuance.ts';
import { initializeState, openState, type PkiState } from '../../pki/state.ts';
import { createEnrollmentToken, DEFAULT_TOKEN_TTL_SECONDS } from '../../pki/tokens.ts';
import type { Role } from '../../relay/protocol/identity.ts';
import { ENROLLMENT_PATH } from '../../relay/protocol/enrollment.ts';
import { createAuditLog } from '../../relay/server/audit.ts';
import {
  createEnrollmentListener,
  type EnrollmentLimits,
  type EnrollmentListener,
} from '../../relay/server/enrollment-listener.ts';
import { RefusalAudit } from '../../relay/server/refusal-audit.ts';
import { loadTlsMaterial, type RelayTlsMaterial } from '../../relay/server/tls.ts';
import { AuditRecorder } from './relay-harness.ts';

export const ENROLLMENT_TRUST_DOMAIN = 'test.dmz';
/** Generous enough that only the rate-limit tests ever meet a limit. */
const DEFAULT_LIMITS: EnrollmentLimits = {
  perAddressPerMinute: 1000,
  perMinute: 1000,
  connections: 64,
  connectionsPerAddress: 64,
};
const HANDSHAKE_TIMEOUT_MS = 5_000;

export interface RunningEnrollmentListener {
  readonly listener: EnrollmentListener;
  readonly port: number;
  readonly url: string;
  readonly audit: AuditRecorder;
}

export interface TokenOptions {
  name?: string;
  role?: Role;
  urls?: readonly string[];
  caFingerprint?: string;
  signingKeyPem?: string;
  now?: Date;
  ttlSeconds?: number;
  /** Record the token in the store, as `dmz-pki token create` does (default true). */
  record?: boolean;
}

export interface EnrollmentFixture {
  readonly stateDir: string;
  readonly state: PkiState;
  readonly issuer: CertificateIssuer;
  readonly tls: RelayTlsMaterial;
  readonly tokenSigningKeyPem: string;
  listen(opts?: {
    limits?: Partial<EnrollmentLimits>;
    handshakeTimeoutMs?: number;
    host?: string;
    /** Stands in for this state's issuer (to make it fail). */
    issuer?: Pick<CertificateIssuer, 'enroll'>;
  }): Promise<RunningEnrollmentListener>;
  createToken(opts?: TokenOptions): Promise<{ token: string; jti: string }>;
  /** The token's status in the store (`active`, `used`, ...). */
  tokenStatus(jti: string): string | undefined;
  close(): Promise<void>;
}

export async function createEnrollmentFixture(
  opts: { ipAddresses?: readonly string[] } = {},
): Promise<EnrollmentFixture> {
  const root = await mkdtemp(join(tmpdir(), 'dmz-enroll-test-'));
  const stateDir = join(root, 'state');
  await initializeState({
    stateDir,
    trustDomain: ENROLLMENT_TRUST_DOMAIN,
    dnsNames: ['localhost'],
    ipAddresses: opts.ipAddresses ?? ['127.0.0.1'],
    enrollmentUrls: ['https://127.0.0.1:8444'],
    caKeyBits: 2048,
  });
  const state = await openState(stateDir);
  const issuer = new CertificateIssuer(state, await state.loadCa());
  const tls = await loadTlsMaterial(stateDir);
  const tokenSigningKeyPem = await state.loadTokenSigningKey();
  const listeners: EnrollmentListener[] = [];

  return {
    stateDir,
    state,
    issuer,
    tls,
    tokenSigningKeyPem,
    async listen({
      limits = {},
      host = '127.0.0.1',
      issuer: standIn,
      handshakeTimeoutMs = HANDSHAKE_TIMEOUT_MS,
    } = {}) {
      const audit = new AuditRecorder();
      const auditLog = createAuditLog(audit.stream);
      const listener = createEnrollmentListener({
        issuer: (standIn as CertificateIssuer | undefined) ?? issuer,
        tls: { certPem: `${tls.certPem.trimEnd()}\n${tls.caPem}`, keyPem: tls.keyPem },
        limits: { ...DEFAULT_LIMITS, ...limits },
        audit: auditLog,
        refusals: new RefusalAudit(auditLog),
        log: pino({ level: 'silent' }),
        handshakeTimeoutMs,
      });
      await listener.app.listen({ host, port: 0 });
      listeners.push(listener);
      const { port } = listener.app.server.address() as AddressInfo;
      return { listener, port, url: `https://${host}:${port}`, audit };
    },
    async createToken(options = {}) {
      const name = options.name ?? 'press-7';
      const role = options.role ?? 'ot';
      const { token, jti, expiresAt } = await createEnrollmentToken({
        signingKeyPem: options.signingKeyPem ?? tokenSigningKeyPem,
        issuer: state.tokenIssuer,
        name,
        role,
        ttlSeconds: options.ttlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS,
        urls: options.urls ?? state.enrollmentUrls,
        caFingerprint: options.caFingerprint ?? state.caFingerprint,
        ...(options.now === undefined ? {} : { now: options.now }),
      });
      if (options.record ?? true) {
        state.store.recordToken({ jti, name, role, createdAt: options.now ?? new Date(), expiresAt });
      }
      return { token, jti };
    },
    tokenStatus: (jti) =>
      state.store.listTokens({ includeSpent: true }).find((record) => record.jti === jti)?.status,
    async close() {
      await Promise.all(listeners.map((listener) => listener.close()));
      state.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}

export interface HttpAnswer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  /** The body parsed as JSON, or its text when it is not JSON. */
  readonly body: unknown;
}

/**
 * One request to the enrollment port over fully verified TLS (the CA as the only root). `body` is
 * sent as JSON unless it is a string or Buffer, which are sent as they are.
 */
export function postToEnrollment(
  port: number,
  caPem: string,
  body: unknown,
  options: { path?: string; method?: string; headers?: Record<string, string> } = {},
): Promise<HttpAnswer> {
  const payload =
    typeof body === 'string' || Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const outgoing = request(
      {
        host: '127.0.0.1',
        port,
        ca: caPem,
        method: options.method ?? 'POST',
        path: options.path ?? ENROLLMENT_PATH,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(payload),
          ...options.headers,
        },
        agent: false,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', reject);
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // Not JSON: keep the text.
          }
          resolve({ status: response.statusCode ?? 0, headers: response.headers, body: parsed });
        });
      },
    );
    outgoing.on('error', reject);
    outgoing.end(payload);
  });
}

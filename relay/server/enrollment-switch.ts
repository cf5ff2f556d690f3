/**
 * The enrollment listener, opened and closed on demand by the PKI upkeep (mode `on`: at start;
 * `auto`: while a token is outstanding). A closed Fastify cannot listen again, so each opening
 * makes a new one.
 *
 * In mode `on` a port that cannot be opened fails the relay's start. In `auto` it must not: the
 * relay serves its agents either way. The switch then reports the port `unavailable` (on /healthz,
 * in /metrics and once in the log, with what to do), keeps trying once a second while the port is
 * wanted, and says so when it opens after all.
 */
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { DmzError } from '../protocol/errors.ts';
import type { AuditLog } from './audit.ts';
import type { RelayConfig } from './config.ts';
import type { ConnectionBudget } from './connection-budget.ts';
import { createEnrollmentListener, type EnrollmentListener } from './enrollment-listener.ts';
import { listenOn } from './listen.ts';
import type { EnrollmentPortState, RelayMetrics } from './metrics.ts';
import type { EnrollmentSwitch } from './pki-upkeep.ts';
import type { RefusalAudit } from './refusal-audit.ts';
import type { RelayPki } from './relay-pki.ts';
import type { RelayTlsMaterial } from './tls.ts';

/** Once a second, as often as the upkeep checks for outstanding tokens. */
const RETRY_MS = 1_000;

export interface EnrollmentPortStatus {
  readonly mode: 'auto' | 'on' | 'off';
  readonly state: EnrollmentPortState;
  /** The port while it listens. */
  readonly port?: number;
  /** Why it is unavailable, and what to do (the same line the log has). */
  readonly problem?: string;
}

export interface EnrollmentSwitchOptions {
  readonly config: RelayConfig;
  readonly pki: RelayPki;
  /** The relay's TLS material in force: a reissued server certificate replaces pki.tls's. */
  readonly tls: () => RelayTlsMaterial;
  readonly budget: ConnectionBudget;
  readonly audit: AuditLog;
  readonly refusals: RefusalAudit;
  readonly metrics: RelayMetrics;
  readonly log: Logger;
}

export interface EnrollmentPort {
  readonly switch: EnrollmentSwitch;
  port(): number | undefined;
  status(): EnrollmentPortStatus;
  /** Loads the server certificate in force into the open listener (a closed one reads it when it opens). */
  reloadCertificate(): void;
}

export function createEnrollmentSwitch(options: EnrollmentSwitchOptions): EnrollmentPort {
  const { config, pki, budget, audit, refusals, metrics, log } = options;
  // The chain includes the CA so an enrolling agent can check it against its pinned fingerprint.
  const serverTls = () => {
    const { certPem, caPem, keyPem } = options.tls();
    return { certPem: `${certPem.trimEnd()}\n${caPem}`, keyPem };
  };
  const { host, port, mode } = config.listen.enrollment;
  let listener: EnrollmentListener | undefined;
  let wanted = false;
  let problem: string | undefined;
  let retry: NodeJS.Timeout | undefined;
  /** Opening and closing never overlap: each waits for the one before. */
  let chain: Promise<void> = Promise.resolve();

  const state = (): EnrollmentPortState =>
    mode === 'off'
      ? 'off'
      : listener !== undefined
        ? 'open'
        : problem !== undefined
          ? 'unavailable'
          : 'closed';
  const publish = () => metrics.setEnrollmentListenerState(state());
  publish();

  const listen = async (): Promise<void> => {
    const opened = createEnrollmentListener({
      issuer: pki.issuer,
      tls: serverTls(),
      limits: {
        perAddressPerMinute: config.limits.enrollmentsPerMinutePerAddress,
        perMinute: config.limits.enrollmentsPerMinute,
        connections: budget.enrollmentConnections,
        connectionsPerAddress: budget.enrollmentConnectionsPerAddress,
      },
      audit,
      refusals,
      metrics,
      log,
      handshakeTimeoutMs: config.tls.handshakeTimeoutMs,
    });
    try {
      await listenOn('enrollment', opened.app, { host, port });
    } catch (error) {
      await opened.close();
      throw error;
    }
    listener = opened;
  };

  /** Auto mode: one attempt; a failure is reported once, then retried until the port is not wanted. */
  const attempt = async (): Promise<void> => {
    retry = undefined;
    if (!wanted || listener !== undefined) return;
    try {
      await listen();
    } catch (error) {
      const line = describe(error);
      if (line !== problem) log.warn({ code: codeOf(error) }, `enrollment port unavailable: ${line}`);
      problem = line;
      publish();
      retry = setTimeout(() => void enqueue(attempt).catch(() => undefined), RETRY_MS);
      retry.unref();
      return;
    }
    if (problem !== undefined) log.info({ port }, 'enrollment port open after all');
    problem = undefined;
    publish();
  };

  const enqueue = (step: () => Promise<void>): Promise<void> => {
    const next = chain.then(step);
    chain = next.catch(() => undefined);
    return next;
  };

  return {
    reloadCertificate: () => listener?.reloadCertificate(serverTls()),
    port: () => (listener === undefined ? undefined : (listener.app.server.address() as AddressInfo).port),
    status: () => {
      const current =
        listener === undefined ? undefined : (listener.app.server.address() as AddressInfo).port;
      return {
        mode,
        state: state(),
        ...(current === undefined ? {} : { port: current }),
        ...(problem === undefined ? {} : { problem }),
      };
    },
    switch: {
      mode,
      open: () =>
        enqueue(async () => {
          wanted = true;
          if (mode === 'auto') return attempt();
          // Mode `on`: the port is part of what the operator asked for; failing it fails the start.
          await listen();
          publish();
        }),
      close: () =>
        enqueue(async () => {
          wanted = false;
          clearTimeout(retry);
          retry = undefined;
          problem = undefined;
          const closing = listener;
          listener = undefined;
          publish();
          await closing?.close();
        }),
    },
  };
}

function describe(error: unknown): string {
  if (error instanceof DmzError)
    return error.hint === undefined ? error.message : `${error.message}; ${error.hint}`;
  return error instanceof Error ? error.message : String(error);
}

function codeOf(error: unknown): string | undefined {
  return error instanceof DmzError ? error.code : undefined;
}

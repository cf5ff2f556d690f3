/**
 * The audit log: security-relevant events only, one JSON line each with an ISO 8601 time, kept
 * apart from the debug log so it can be shipped to a SIEM and retained on its own terms.
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import { fdDestination, fileDestination, type LogDestination } from './log-destination.ts';

export const AUDIT_EVENT = {
  agentConnected: 'agent.connected',
  agentRefused: 'agent.refused',
  agentDisconnected: 'agent.disconnected',
  sessionOpened: 'session.opened',
  sessionRefused: 'session.refused',
  sessionClosed: 'session.closed',
  tunnelOpened: 'tunnel.opened',
  tunnelRefused: 'tunnel.refused',
  tunnelClosed: 'tunnel.closed',
  policyReloaded: 'policy.reloaded',
  policyReloadFailed: 'policy.reload_failed',
  certificateRevoked: 'certificate.revoked',
  enrollmentSucceeded: 'enrollment.succeeded',
  enrollmentRefused: 'enrollment.refused',
  certificateRenewed: 'certificate.renewed',
  certificateRenewalRefused: 'certificate.renewal_refused',
  crlReissued: 'crl.reissued',
  ticketKeysRotated: 'tls.ticket_keys_rotated',
  serverCertificateReloaded: 'tls.server_certificate_reloaded',
  relayStarted: 'relay.started',
  relayStopped: 'relay.stopped',
} as const;

export type AuditEvent = (typeof AUDIT_EVENT)[keyof typeof AUDIT_EVENT];

export interface AuditLog {
  record(event: AuditEvent, fields?: Record<string, unknown>): void;
}

/** The configuration key that names the audit destination, for errors. */
const AUDIT_SETTING = 'log.audit';
const STDOUT = 1;

/**
 * `destination` is a file path, `-` for standard output, or a stream (tests). A path is opened
 * now: one that cannot be written throws (RELAY_ERR_LOG), naming it.
 */
export function createAuditLog(
  destination: string | DestinationStream,
): AuditLog & { flush(): void; close(): void; discard(): void } {
  const file: LogDestination | undefined =
    typeof destination !== 'string'
      ? undefined
      : destination === '-'
        ? fdDestination(STDOUT)
        : fileDestination(destination, AUDIT_SETTING);
  const stream: DestinationStream = file ?? (destination as DestinationStream);
  const logger: Logger = pino({ base: { log: 'audit' }, timestamp: pino.stdTimeFunctions.isoTime }, stream);
  return {
    record(event, fields = {}) {
      logger.info({ event, ...fields });
    },
    /** Writes are synchronous: nothing is ever waiting. Kept for callers that flush before exit. */
    flush() {
      logger.flush();
    },
    close() {
      file?.close();
    },
    /** A start that failed before the first line: no empty audit file (or directory) left behind. */
    discard() {
      file?.discard();
    },
  };
}

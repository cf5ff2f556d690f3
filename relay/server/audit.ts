/**
 * The audit log: security-relevant events only, one JSON line each, kept apart from the debug log
 * so it can be shipped to a SIEM and retained on its own terms.
 */
import { pino, type DestinationStream, type Logger } from 'pino';

export const AUDIT_EVENT = {
  agentConnected: 'agent.connected',
  agentRefused: 'agent.refused',
  agentDisconnected: 'agent.disconnected',
  sessionOpened: 'session.opened',
  sessionRefused: 'session.refused',
  sessionClosed: 'session.closed',
  policyReloaded: 'policy.reloaded',
  policyReloadFailed: 'policy.reload_failed',
  certificateRevoked: 'certificate.revoked',
  enrollmentSucceeded: 'enrollment.succeeded',
  enrollmentRefused: 'enrollment.refused',
  certificateRenewed: 'certificate.renewed',
  certificateRenewalRefused: 'certificate.renewal_refused',
  crlReissued: 'crl.reissued',
  relayStarted: 'relay.started',
  relayStopped: 'relay.stopped',
} as const;

export type AuditEvent = (typeof AUDIT_EVENT)[keyof typeof AUDIT_EVENT];

export interface AuditLog {
  record(event: AuditEvent, fields?: Record<string, unknown>): void;
}

/** `destination` is a file path, `-` for standard output, or a stream (tests). */
export function createAuditLog(destination: string | DestinationStream): AuditLog & { flush(): void } {
  const stream =
    typeof destination === 'string'
      ? pino.destination({ dest: destination === '-' ? 1 : destination, sync: false, mkdir: true })
      : destination;
  const logger: Logger = pino({ base: { log: 'audit' }, timestamp: pino.stdTimeFunctions.isoTime }, stream);
  return {
    record(event, fields = {}) {
      logger.info({ event, ...fields });
    },
    flush() {
      logger.flush();
    },
  };
}

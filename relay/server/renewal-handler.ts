/**
 * Certificate renewal over the agent's live mTLS connection. The identity renewed is the one the
 * connection authenticated with, never one named in the frame; the CA refuses a certificate that
 * is expired, revoked or not its own (an expired or revoked agent needs a new token).
 */
import { DmzError, ERROR_MESSAGES, type ErrorCode } from '../protocol/errors.ts';
import type { ToRelayFrameOf } from '../protocol/frames.ts';
import type { AgentConnection } from './agent-connection.ts';
import { AUDIT_EVENT } from './audit.ts';
import type { RelayContext } from './context.ts';

export function renewCertificate(
  ctx: RelayContext,
  connection: AgentConnection,
  frame: ToRelayFrameOf<'renew'>,
): void {
  const { renewer } = ctx;
  if (renewer === undefined)
    throw new DmzError('RELAY_ERR_UNSUPPORTED', 'this relay does not renew certificates');
  if (connection.renewing) throw new DmzError('RELAY_ERR_TOO_MANY', 'a renewal is already in progress');
  connection.renewing = true;
  const { identity } = connection;
  const previousSerial = connection.link.serialHex;
  renewer
    .renew(identity, previousSerial, frame.csr)
    .then(
      (issued) => {
        connection.renewing = false;
        ctx.audit.record(AUDIT_EVENT.certificateRenewed, {
          agent: identity.name,
          role: identity.role,
          previousSerial,
          serial: issued.serialHex,
        });
        if (connection.state === 'closed') return;
        connection.outbound.sendControl({
          type: 'renewed',
          ref: frame.ref,
          certificate: issued.certificatePem,
          ca: issued.caPem,
        });
      },
      (error: unknown) => {
        connection.renewing = false;
        const code: ErrorCode = error instanceof DmzError ? error.code : 'PKI_ERR_RENEWAL_REFUSED';
        ctx.audit.record(AUDIT_EVENT.certificateRenewalRefused, {
          agent: identity.name,
          serial: previousSerial,
          reason: code,
          detail: error instanceof Error ? error.message : String(error),
        });
        if (!(error instanceof DmzError))
          ctx.log.error({ err: error, agent: identity.name }, 'renewal failed');
        if (connection.state === 'closed') return;
        connection.outbound.sendControl({
          type: 'error',
          ref: frame.ref,
          code,
          message: ERROR_MESSAGES[code],
        });
      },
    )
    .catch((error: unknown) => ctx.log.error({ err: error, agent: identity.name }, 'renewal reply failed'));
}

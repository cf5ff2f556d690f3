/**
 * What goes wrong between a source and its server, in the catalog's terms: node-opcua reports
 * failures as plain Errors whose message holds a StatusCode name somewhere; this turns them into
 * AGENT_ERR_OPCUA_* errors for status, and into the StatusCode name the points carry as reason.
 */
import { DmzError } from '../../../../relay/protocol/errors.ts';
import type { ClientPki } from './client-pki.ts';
import { connectError } from './server-certificate.ts';

/** A certificate StatusCode in an error of node-opcua's (`BadCertificateTimeInvalid`). */
const CERTIFICATE_STATUS = /Bad(?:Certificate|Security)\w*/;
/** A StatusCode name in an error of node-opcua's, for the points' reason. */
const STATUS_NAME = /Bad[A-Z]\w+/;

/** The catalog error for a failure node-opcua reported as a plain Error. */
export function classify(endpoint: string, error: unknown, pki: ClientPki): DmzError {
  const message = error instanceof Error ? error.message : String(error);
  const certificate = CERTIFICATE_STATUS.exec(message)?.[0];
  if (certificate !== undefined) {
    // A server that does not trust the client says only BadSecurityChecksFailed (Part 4 §5.5.2).
    return new DmzError(
      'AGENT_ERR_OPCUA_CERTIFICATE',
      `${endpoint} refused the secure channel (${certificate}); does it trust this agent's client certificate ${pki.certificateFile}?`,
      { cause: error },
    );
  }
  const status = STATUS_NAME.exec(message)?.[0];
  if (status !== undefined && /^Bad(User|Identity)/.test(status)) {
    return new DmzError('AGENT_ERR_OPCUA_SESSION', `${endpoint} refused the session (${status})`, {
      cause: error,
    });
  }
  return connectError(endpoint, error);
}

/** The StatusCode name the points carry for an error. */
export function reasonOf(error: DmzError): string {
  const cause = error.cause instanceof Error ? error.cause.message : '';
  const named = STATUS_NAME.exec(cause)?.[0] ?? STATUS_NAME.exec(error.message)?.[0];
  if (named !== undefined) return named;
  if (error.code === 'AGENT_ERR_OPCUA_ENDPOINT') return 'BadSecurityPolicyRejected';
  return error.code === 'AGENT_ERR_OPCUA_SESSION' ? 'BadSessionClosed' : 'BadServerNotConnected';
}

export function sessionError(message: string): DmzError {
  return new DmzError('AGENT_ERR_OPCUA_SESSION', message);
}

export function stoppedError(): DmzError {
  return new DmzError('AGENT_ERR_OPCUA_CONNECT', 'the source stopped');
}

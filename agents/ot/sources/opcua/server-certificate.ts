/**
 * The server's certificate, as the server itself hands it out: GetEndpoints (Part 4 §5.4.4) over
 * an unsecured channel, the endpoint of the configured mode and policy picked, its certificate
 * chain split. What comes back is a claim, never trust: the source verifies it against its trust
 * list (client-pki.ts) and the trust command shows its fingerprint to a person.
 */
import './library-log.ts';
import { OPCUAClient, type ConnectionStrategyOptions, type EndpointDescription } from 'node-opcua';
import { DmzError } from '../../../../relay/protocol/errors.ts';
import { splitCertificateChain } from './certificates.ts';
import { clientOptions, MODES, POLICY_URIS } from './client-options.ts';
import type { ClientPki } from './client-pki.ts';
import type { OpcuaSettings } from './config.ts';

export interface FetchOptions {
  readonly strategy: ConnectionStrategyOptions;
  readonly onConnectError?: (error: Error) => void;
  /** Called with the client before it connects, so that a stopping source can disconnect it. */
  readonly onClient?: (client: OPCUAClient) => void;
}

/** The certificate chain (leaf first) of the endpoint with the section's mode and policy. */
export async function fetchServerChain(
  settings: OpcuaSettings,
  pki: ClientPki,
  options: FetchOptions,
): Promise<Buffer[]> {
  const client = OPCUAClient.create(clientOptions(settings, pki, { mode: 'None', policy: 'None' }, options));
  options.onClient?.(client);
  let endpoints: EndpointDescription[];
  try {
    await client.connect(settings.endpoint);
    endpoints = await client.getEndpoints();
  } catch (cause) {
    if (/BadSecurityPolicyRejected/.test(String(cause))) {
      throw new DmzError(
        'AGENT_ERR_OPCUA_ENDPOINT',
        `${settings.endpoint} refuses the unsecured channel its certificate is asked for on (GetEndpoints)`,
        { cause, hint: "give the server's certificate file in security.serverCertificate instead" },
      );
    }
    throw connectError(settings.endpoint, cause);
  } finally {
    await client.disconnect().catch(() => undefined);
  }
  const mode = MODES[settings.securityMode];
  const policy = POLICY_URIS[settings.securityPolicy];
  const endpoint = endpoints.find(
    (offer) => offer.securityMode === mode && offer.securityPolicyUri === policy,
  );
  const certificate = endpoint?.serverCertificate;
  if (endpoint === undefined) {
    const offered = endpoints.map(
      (offer) => `${MODES_BY_VALUE.get(offer.securityMode) ?? '?'}/${policyName(offer.securityPolicyUri)}`,
    );
    throw new DmzError(
      'AGENT_ERR_OPCUA_ENDPOINT',
      `${settings.endpoint} offers no endpoint with ${settings.securityMode}/${settings.securityPolicy} (it offers ${[...new Set(offered)].join(', ') || 'none'})`,
    );
  }
  if (certificate === null || certificate === undefined || certificate.length === 0) {
    throw new DmzError(
      'AGENT_ERR_OPCUA_CERTIFICATE',
      `${settings.endpoint} sent no certificate with its endpoint`,
    );
  }
  return splitCertificateChain(certificate);
}

/** A socket error of the connection attempt, which node-opcua wraps in several lines of advice. */
const SOCKET_ERROR =
  /\b(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|EADDRNOTAVAIL)\b/;
const SOCKET_ERRORS: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'nothing listens there',
  ENOTFOUND: 'the host name is not known',
  EAI_AGAIN: 'the host name could not be looked up',
  EADDRNOTAVAIL: 'localAddress is not an address of this host',
};

/** What went wrong in one line: `nothing listens there (ECONNREFUSED)`. */
export function describeConnectFailure(cause: unknown): string {
  const message = cause instanceof Error ? cause.message : String(cause);
  const socket = SOCKET_ERROR.exec(message)?.[1] ?? (cause as NodeJS.ErrnoException | undefined)?.code;
  if (socket === undefined) return (message.split('\n')[0] ?? '').trim();
  return `${SOCKET_ERRORS[socket] ?? 'no connection'} (${socket})`;
}

/** AGENT_ERR_OPCUA_CONNECT, saying in one line what went wrong. */
export function connectError(endpoint: string, cause: unknown): DmzError {
  if (cause instanceof DmzError) return cause;
  const detail = describeConnectFailure(cause);
  return new DmzError('AGENT_ERR_OPCUA_CONNECT', `cannot connect to ${endpoint}: ${detail}`, {
    cause,
    hint: 'check that the server runs and that this host reaches it (endpoint, firewall, localAddress)',
  });
}

const MODES_BY_VALUE = new Map(Object.entries(MODES).map(([name, value]) => [value, name]));

function policyName(uri: string | null): string {
  return uri?.split('#')[1] ?? 'unknown';
}

/**
 * The one error catalog. Every error the product raises on purpose has a stable `code` here.
 * The wire and the user see the code and its plain message; internal detail (the `cause`) goes
 * to the log only.
 */
export const ERROR_MESSAGES = {
  // Wire protocol and relay.
  RELAY_ERR_FRAME_TOO_LARGE: 'frame exceeds the size limit',
  RELAY_ERR_MALFORMED_FRAME: 'frame could not be decoded',
  RELAY_ERR_UNKNOWN_FRAME: 'unknown frame type',
  RELAY_ERR_INVALID_FRAME: 'frame fields are invalid',
  RELAY_ERR_UNSUPPORTED: 'frame type is not supported by this relay',
  RELAY_ERR_BAD_STATE: 'frame is not allowed in the current connection state',
  RELAY_ERR_INVALID_TOPIC: 'topic or filter is invalid',
  RELAY_ERR_FORBIDDEN: 'not permitted by policy',
  RELAY_ERR_NO_SUCH_SESSION: 'no such session',
  RELAY_ERR_NO_SUCH_PEER: 'peer agent is not connected',
  RELAY_ERR_SESSION_REFUSED: 'peer refused the session',
  RELAY_ERR_SESSION_CLOSED: 'session closed',
  RELAY_ERR_LEASE_EXPIRED: 'session lease expired',
  RELAY_ERR_TIMEOUT: 'request deadline passed',
  RELAY_ERR_DUPLICATE_REQUEST: 'a request with this id is already pending',
  RELAY_ERR_RATE_LIMITED: 'rate limit exceeded',
  RELAY_ERR_TOO_MANY: 'limit on subscriptions, sessions or pending requests reached',
  RELAY_ERR_SLOW_CONSUMER: 'consumer too slow, disconnected',
  RELAY_ERR_PEER_BUSY: 'peer is not keeping up; try again later',
  RELAY_ERR_REVOKED: 'certificate revoked',
  RELAY_ERR_POLICY_CHANGED: 'no longer permitted by policy',
  RELAY_ERR_IDENTITY: 'certificate does not carry a valid agent identity',
  RELAY_ERR_SHUTTING_DOWN: 'relay is shutting down',
  RELAY_ERR_REPLACED: 'a newer connection of this agent replaced this one',
  RELAY_ERR_BUSY: 'relay is at its limit of connections being set up; try again later',
  RELAY_ERR_INTERNAL: 'internal error',
  // Configuration.
  CONFIG_ERR_INVALID: 'configuration is invalid',
  CONFIG_ERR_UNREADABLE: 'configuration file could not be read',
  // Certificate authority and enrollment.
  PKI_ERR_ALREADY_INITIALIZED: 'a certificate authority already exists in this state directory',
  PKI_ERR_NOT_INITIALIZED: 'no certificate authority in this state directory',
  PKI_ERR_STATE_PERMISSIONS: 'state directory or key file permissions are too open',
  PKI_ERR_PASSPHRASE: 'CA key passphrase is missing or wrong',
  PKI_ERR_TOKEN_INVALID: 'enrollment token is invalid',
  PKI_ERR_TOKEN_EXPIRED: 'enrollment token has expired',
  PKI_ERR_TOKEN_USED: 'enrollment token has already been used',
  PKI_ERR_TOKEN_REVOKED: 'enrollment token has been revoked',
  PKI_ERR_TOKEN_UNKNOWN: 'enrollment token is not known to this relay',
  PKI_ERR_CSR_INVALID: 'certificate signing request is invalid',
  PKI_ERR_CSR_TOO_LARGE: 'certificate signing request is too large',
  PKI_ERR_CSR_SIGNATURE: 'certificate signing request signature does not verify',
  PKI_ERR_CSR_KEY: 'certificate signing request key is not RSA of at least 2048 bits',
  PKI_ERR_CERT_INVALID: 'certificate is invalid',
  PKI_ERR_NOT_FOUND: 'no such agent, certificate or token',
  PKI_ERR_RENEWAL_REFUSED: 'certificate renewal refused',
  PKI_ERR_CA_MISMATCH: 'enrollment endpoint does not present the pinned CA',
  PKI_ERR_ENROLLMENT_FAILED: 'enrollment failed',
  PKI_ERR_RATE_LIMITED: 'too many enrollment attempts',
  // Agents.
  AGENT_ERR_POINT_BATCH: 'points batch is invalid',
  // Command-line tools (dmz-pki, dmz-agent).
  CLI_ERR_USAGE: 'invalid command line',
  CLI_ERR_INVALID_ARGUMENT: 'an argument is invalid',
  PKI_ERR_REQUEST_INVALID: 'enrollment request is malformed',
  PKI_ERR_REQUEST_TOO_LARGE: 'enrollment request is too large',
  PKI_ERR_ALREADY_ENROLLED: 'this credential directory already holds an enrolled identity',
  PKI_ERR_NOT_ENROLLED: 'no complete enrolled identity in this credential directory',
} as const;

export type ErrorCode = keyof typeof ERROR_MESSAGES;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_MESSAGES, value);
}

/**
 * An error the product raises on purpose. `message` is safe to show to a peer or user;
 * put anything internal (paths, stack, library errors) in `cause`.
 */
export class DmzError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string = ERROR_MESSAGES[code], options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DmzError';
    this.code = code;
  }
}

/** One problem in a configuration file, named by its key path (`/policy/0/subscribe/1`). */
export interface ConfigIssue {
  readonly path: string;
  readonly message: string;
}

export class ConfigError extends DmzError {
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[], source = 'configuration') {
    super(
      'CONFIG_ERR_INVALID',
      `${source} is invalid:\n${issues.map((issue) => `  ${issue.path || '/'}: ${issue.message}`).join('\n')}`,
    );
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

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
  RELAY_ERR_LISTEN: 'a listener cannot open its port',
  RELAY_ERR_STATE_LOCKED: 'another relay is running on this state directory',
  RELAY_ERR_LOG: 'a log destination cannot be opened',
  // Configuration.
  CONFIG_ERR_INVALID: 'configuration is invalid',
  CONFIG_ERR_UNREADABLE: 'configuration file could not be read',
  CONFIG_ERR_TRUST_DOMAIN: "the configuration's trust domain is not the CA's",
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
  AGENT_ERR_POINT_INVALID: 'point is invalid',
  AGENT_ERR_LOG_RECORD: 'a log record is empty, too large, or not bytes',
  AGENT_ERR_LOG_APPEND: 'an append holds no records, or more records or bytes than allowed',
  AGENT_ERR_LOG_READ: 'a log read range is invalid',
  AGENT_ERR_LOG_TOO_MANY_STREAMS: 'the stream log keeps the most streams it can',
  AGENT_ERR_LOG_BUSY: 'the stream log is behind; too much waits to be written',
  AGENT_ERR_LOG_CLOSED: 'the stream log is closed',
  AGENT_ERR_LOG_FAILED: 'the stream log storage failed; reopen the log',
  AGENT_ERR_LOG_CORRUPT: 'the stream log is damaged beyond a torn tail',
  AGENT_ERR_LOG_LOCKED: 'another process has the stream log open',
  AGENT_ERR_LOG_PERMISSIONS: 'the stream log directory is open to other users',
  AGENT_ERR_SOURCE_STATE: 'a point source starts once, and not after it was stopped',
  AGENT_ERR_SINK_ORDER: 'a sink write does not continue the sequence it holds',
  AGENT_ERR_SINK_ENTRY: 'a sink write holds a malformed entry, or more than the sink takes',
  AGENT_ERR_SINK_BUSY: 'the sink is behind; too much waits to be written',
  AGENT_ERR_SINK_CLOSED: 'the sink is closed',
  AGENT_ERR_SINK_FAILED: 'the sink storage failed; reopen the sink',
  AGENT_ERR_SINK_CORRUPT: 'the sink files are damaged beyond a torn tail',
  AGENT_ERR_SINK_LOCKED: 'another process has the sink open',
  AGENT_ERR_SINK_PERMISSIONS: 'the sink directory is open to other users',
  AGENT_ERR_ENROLLMENT_PORT_CLOSED: 'nothing listens on the enrollment port',
  AGENT_ERR_CONNECT_FAILED: 'could not connect to the relay',
  AGENT_ERR_LINK_CLOSED: 'the link to the relay is closed',
  AGENT_ERR_RELAY_SILENT: 'the relay sent nothing for a whole lease',
  AGENT_ERR_RESUME_CURSOR: 'a resume cursor is malformed or too large for one subscription',
  AGENT_ERR_STREAM_RECORD: 'a stream record (gap or replay marker) is malformed',
  AGENT_ERR_NOT_RUNNING: 'no agent is running on this configuration',
  AGENT_ERR_LISTEN: "the agent's admin listener cannot open its port",
  AGENT_ERR_STATUS_DAMAGED: "the agent's status file is damaged",
  AGENT_ERR_OPCUA_CONNECT: 'could not connect to the OPC UA server',
  AGENT_ERR_OPCUA_ENDPOINT:
    'the OPC UA server offers no endpoint with the configured security mode and policy',
  AGENT_ERR_OPCUA_CERTIFICATE: 'the OPC UA server certificate is not trusted or not valid',
  AGENT_ERR_OPCUA_FINGERPRINT: 'the OPC UA server certificate does not have the expected fingerprint',
  AGENT_ERR_OPCUA_SESSION: 'the OPC UA server refused the session or the subscription',
  // Command-line tools (dmz-relay, dmz-pki, dmz-agent, the demo).
  CLI_ERR_USAGE: 'invalid command line',
  CLI_ERR_INVALID_ARGUMENT: 'an argument is invalid',
  CLI_ERR_FILE: 'a file could not be read or written',
  CLI_ERR_UNEXPECTED: 'unexpected error',
  PKI_ERR_REQUEST_INVALID: 'enrollment request is malformed',
  PKI_ERR_REQUEST_TOO_LARGE: 'enrollment request is too large',
  PKI_ERR_ALREADY_ENROLLED: 'this credential directory already holds an enrolled identity',
  PKI_ERR_NOT_ENROLLED: 'no complete enrolled identity in this credential directory',
  PKI_ERR_NAME_TAKEN: 'this agent name is held under the other role',
} as const;

export type ErrorCode = keyof typeof ERROR_MESSAGES;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_MESSAGES, value);
}

export interface DmzErrorOptions {
  readonly cause?: unknown;
  /**
   * What the operator should do about it, for the command line (`create one with ...`). Never
   * sent on the wire: it may name local paths and settings.
   */
  readonly hint?: string;
}

/**
 * An error the product raises on purpose. `message` is safe to show to a peer or user;
 * put anything internal (paths, stack, library errors) in `cause`.
 */
export class DmzError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string = ERROR_MESSAGES[code], options: DmzErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DmzError';
    this.code = code;
    this.hint = options.hint;
  }
}

/** One problem in a configuration file, named by its key path (`/policy/0/subscribe/1`). */
export interface ConfigIssue {
  readonly path: string;
  readonly message: string;
}

export class ConfigError extends DmzError {
  readonly issues: readonly ConfigIssue[];
  /** The file (or "configuration") the issues are in. */
  readonly source: string;

  constructor(issues: readonly ConfigIssue[], source = 'configuration', options: DmzErrorOptions = {}) {
    super(
      'CONFIG_ERR_INVALID',
      `${source} is invalid:\n${issues.map((issue) => `  ${issue.path || '/'}: ${issue.message}`).join('\n')}`,
      options,
    );
    this.name = 'ConfigError';
    this.issues = issues;
    this.source = source;
  }
}

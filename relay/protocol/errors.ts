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
  RELAY_ERR_CERT_UNKNOWN:
    "the certificate is not on record at the relay's CA (issued after the backup it was restored from)",
  RELAY_ERR_SHUTTING_DOWN: 'relay is shutting down',
  RELAY_ERR_REPLACED: 'a newer connection of this agent replaced this one',
  RELAY_ERR_BUSY: 'relay is at its limit of connections being set up; try again later',
  RELAY_ERR_INTERNAL: 'internal error',
  RELAY_ERR_LISTEN: 'a listener cannot open its port',
  RELAY_ERR_STATE_LOCKED: 'another relay is running on this state directory',
  RELAY_ERR_LOG: 'a log destination cannot be opened',
  RELAY_ERR_NO_SUCH_STREAM: 'no such stream in this session',
  RELAY_ERR_DUPLICATE_STREAM: 'a stream with this number is already open in this session',
  RELAY_ERR_STREAM_CREDIT: 'stream data beyond the credit granted, or credit beyond the window',
  // Configuration.
  CONFIG_ERR_INVALID: 'configuration is invalid',
  CONFIG_ERR_UNREADABLE: 'configuration file could not be read',
  CONFIG_ERR_PERMISSIONS: 'a file that decides who may do what can be changed by another user',
  CONFIG_ERR_TRUST_DOMAIN: "the configuration's trust domain is not the CA's",
  // Certificate authority and enrollment.
  PKI_ERR_ALREADY_INITIALIZED: 'a certificate authority already exists in this state directory',
  PKI_ERR_NOT_INITIALIZED: 'no certificate authority in this state directory',
  PKI_ERR_STATE_PERMISSIONS: 'state directory or key file permissions are too open',
  PKI_ERR_STATE_OWNER: 'the state directory or a file in it belongs to another user',
  PKI_ERR_STATE_DAMAGED: 'a file of the CA state is damaged',
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
  PKI_ERR_RELAY_CERT_MISMATCH: "the relay's server certificate does not match its key",
  PKI_ERR_BACKUP_PASSPHRASE: 'the backup passphrase is missing or does not open this backup',
  PKI_ERR_BACKUP_PASSPHRASE_WEAK: 'the backup passphrase is too short',
  PKI_ERR_BACKUP_DAMAGED: 'the backup file is truncated, altered or not a backup',
  PKI_ERR_STORE_VERSION: 'the PKI store was written by a newer version of this program',
  PKI_ERR_BACKUP_VERSION: 'the backup is of a format version this program does not read',
  PKI_ERR_RESTORE_NOT_EMPTY: 'the state directory to restore into is not empty',
  PKI_ERR_AUDIT_WRITE: 'the PKI audit log cannot be written; a command that cannot be audited is refused',
  PKI_ERR_AUDIT_BROKEN: 'the PKI audit log does not verify: a record was altered, removed or moved',
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
  AGENT_ERR_OVER_RELAY_LIMIT: 'the relay limits announced in its welcome leave this consumer no session',
  AGENT_ERR_NOT_RUNNING: 'no agent is running on this configuration',
  AGENT_ERR_LISTEN: "one of the agent's listeners (admin, API) cannot open its port",
  AGENT_ERR_STATUS_DAMAGED: "the agent's status file is damaged",
  AGENT_ERR_OPCUA_CONNECT: 'could not connect to the OPC UA server',
  AGENT_ERR_OPCUA_ENDPOINT:
    'the OPC UA server offers no endpoint with the configured security mode and policy',
  AGENT_ERR_OPCUA_CERTIFICATE: 'the OPC UA server certificate is not trusted or not valid',
  AGENT_ERR_OPCUA_FINGERPRINT: 'the OPC UA server certificate does not have the expected fingerprint',
  AGENT_ERR_OPCUA_SESSION: 'the OPC UA server refused the session or the subscription',
  // Writes from IT to OT: each refusal of the OT agent's checks (agents/ot/writes/) has its own code.
  AGENT_ERR_WRITE_MALFORMED: 'the write command is not a well-formed command for this request',
  AGENT_ERR_WRITE_WRONG_AUDIENCE: 'the write command is addressed to another agent',
  AGENT_ERR_WRITE_READ_ONLY: 'the point is not writable on this agent',
  AGENT_ERR_WRITE_NOT_WRITER: 'this IT agent may not write the point',
  AGENT_ERR_WRITE_ISSUER_MISMATCH: "the write command names an issuer other than the session's peer",
  AGENT_ERR_WRITE_SIGNATURE_MISSING: 'the point requires a signed write command',
  AGENT_ERR_WRITE_KEY_NOT_PINNED: 'the write command is signed with a key not pinned for this writer',
  AGENT_ERR_WRITE_SIGNATURE_INVALID: 'the write command signature does not verify',
  AGENT_ERR_WRITE_EXPIRED: 'the write command deadline has passed',
  AGENT_ERR_WRITE_DEADLINE_TOO_FAR: 'the write command deadline is too far ahead',
  AGENT_ERR_WRITE_REPLAYED: 'the write command was seen before',
  AGENT_ERR_WRITE_WRONG_TYPE: 'the value is not of the type the point takes',
  AGENT_ERR_WRITE_OUT_OF_RANGE: 'the value is outside what the point allows',
  AGENT_ERR_WRITE_WINDOW_CLOSED: 'writes to this point need the local write window, which is closed',
  AGENT_ERR_WRITE_BUSY: 'too many write commands are live; try again later',
  AGENT_ERR_WRITE_STORAGE: 'the write command could not be recorded durably, so it was not executed',
  AGENT_ERR_WRITE_DEVICE_EXCEPTION: 'the device refused the write',
  AGENT_ERR_WRITE_DEVICE_FAILED: 'the write did not reach the device, or its answer did not come back',
  AGENT_ERR_WRITE_WINDOW: 'the write window cannot be opened, closed or read',
  AGENT_ERR_WRITE_KEY: "the IT agent's write key cannot be read or created",
  AGENT_ERR_WRITE_AGENT_RUNNING: 'the IT agent of this configuration is running: write through it',
  // Tunnels (agents/tunnels/): why a stream was refused or ended by an agent.
  AGENT_ERR_TUNNEL_NO_SERVICE: 'the OT agent has no tunnel service of this name',
  AGENT_ERR_TUNNEL_FORBIDDEN: "the OT agent's service does not admit this IT agent",
  AGENT_ERR_TUNNEL_LIMIT: "the OT agent's service has as many streams open as it allows",
  AGENT_ERR_TUNNEL_PEER_LIMIT:
    "this IT agent holds as many of the OT agent's service streams as the service allows one IT agent (maxStreamsPerPeer)",
  AGENT_ERR_TUNNEL_ENTRANCE_FULL:
    'this entrance holds its share of the streams to its OT agent, and the rest are kept for the other entrances',
  AGENT_ERR_TUNNEL_CONNECT_RATE:
    "the OT agent's service opened as many target connections this second as it allows",
  AGENT_ERR_TUNNEL_TARGET_REFUSED: 'the tunnel target refused the connection',
  AGENT_ERR_TUNNEL_TARGET_TIMEOUT: 'the tunnel target did not answer the connection in time',
  AGENT_ERR_TUNNEL_TARGET_FAILED: 'the connection to the tunnel target failed',
  AGENT_ERR_TUNNEL_CLIENT_FAILED: 'the tunnel client connection failed',
  AGENT_ERR_TUNNEL_IDLE: 'the stream was idle for longer than its service allows',
  AGENT_ERR_TUNNEL_OFFLINE: 'the link to the relay, or the session with the OT agent, is not up',
  AGENT_ERR_TUNNEL_PROTOCOL: 'the peer broke the stream protocol (data beyond credit)',
  AGENT_ERR_TUNNEL_STREAM_IN_USE: 'the OT agent still holds a stream of this number in this session',
  AGENT_ERR_TUNNEL_LISTEN: 'a tunnel entrance cannot open its listen address',
  // The IT agent's HTTP API (agents/it/api/): what a client sees as {code, message}.
  AGENT_ERR_API_BAD_REQUEST: 'the request does not match what this endpoint takes',
  AGENT_ERR_API_BAD_JSON: 'the request body is not valid JSON',
  AGENT_ERR_API_BODY_TOO_LARGE: 'the request body is larger than the API takes',
  AGENT_ERR_API_MEDIA_TYPE: 'the request body must be application/json',
  AGENT_ERR_API_BAD_CURSOR: 'the cursor is malformed or ahead of what this agent issued',
  AGENT_ERR_API_CURSOR_EXPIRED:
    'the cursor is from before the store restarted; start again from the current values',
  AGENT_ERR_API_BAD_FILTER: 'the topic or topic filter is invalid',
  AGENT_ERR_API_UNKNOWN_TOPIC: 'no value is held for this topic',
  AGENT_ERR_API_NOT_FOUND: 'no such endpoint',
  AGENT_ERR_API_UNAUTHORIZED: 'the credentials are missing or wrong',
  AGENT_ERR_API_FORBIDDEN: "the user's role does not allow this request (writes need role write)",
  AGENT_ERR_API_RATE_LIMITED: 'too many failed authentication attempts from this address',
  AGENT_ERR_API_TOO_MANY_STREAMS: 'the API serves as many live streams as it allows',
  AGENT_ERR_API_USER_STREAMS:
    'this user holds as many live streams as it.api.maxStreamsPerUser allows: close one first',
  AGENT_ERR_API_SECRET:
    "the API's token, password or TLS key file is unreadable, too short or open to others",
  AGENT_ERR_API_HOST:
    'the request names a host this API does not answer for without authentication (DNS rebinding)',
  AGENT_ERR_API_INTERNAL: 'internal error',
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

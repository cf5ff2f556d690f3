/** The stream log's errors: each kind and the catalog code it raises (relay/protocol/errors.ts). */
import { DmzError, type DmzErrorOptions, type ErrorCode } from '../../../relay/protocol/errors.ts';

export const LOG_ERROR_CODES = {
  /** a record is not bytes, is empty, or is over MAX_RECORD_BYTES. */
  record: 'AGENT_ERR_LOG_RECORD',
  /** an append holds no records, or more records or bytes than the limit. */
  append: 'AGENT_ERR_LOG_APPEND',
  /** a read's start or count is not a valid number. */
  read: 'AGENT_ERR_LOG_READ',
  /** the log already keeps MAX_STREAMS streams. */
  tooManyStreams: 'AGENT_ERR_LOG_TOO_MANY_STREAMS',
  /** more than MAX_PENDING_BYTES wait to be written. */
  busy: 'AGENT_ERR_LOG_BUSY',
  /** the log is closed (or closing). */
  closed: 'AGENT_ERR_LOG_CLOSED',
  /** a write, sync or file operation failed; the log must be reopened. */
  failed: 'AGENT_ERR_LOG_FAILED',
  /** a sealed segment, an index or the checkpoint does not verify. */
  corrupt: 'AGENT_ERR_LOG_CORRUPT',
  /** another live process (or this one) has the log open. */
  locked: 'AGENT_ERR_LOG_LOCKED',
  /** the log directory is open to group or others, or not ours. */
  permissions: 'AGENT_ERR_LOG_PERMISSIONS',
} as const satisfies Record<string, ErrorCode>;

export type LogErrorKind = keyof typeof LOG_ERROR_CODES;

export function logError(kind: LogErrorKind, message: string, options: DmzErrorOptions = {}): DmzError {
  return new DmzError(LOG_ERROR_CODES[kind], message, options);
}

/** An I/O failure, with the system error as the cause (its path and errno go to the log, not the peer). */
export function storageFailure(what: string, cause: unknown): DmzError {
  const reason = (cause as NodeJS.ErrnoException | undefined)?.code ?? 'error';
  return logError('failed', `stream log storage failed while ${what} (${reason})`, { cause });
}

/** The IT sinks' errors: each kind and the catalog code it raises (relay/protocol/errors.ts). */
import { DmzError, type DmzErrorOptions, type ErrorCode } from '../../../relay/protocol/errors.ts';

export const SINK_ERROR_CODES = {
  /** a point is not lastSeq + 1, or a gap does not start there or ends before it starts. */
  order: 'AGENT_ERR_SINK_ORDER',
  /** an entry is not a point or a gap, or a write is larger (or has more topics) than allowed. */
  entry: 'AGENT_ERR_SINK_ENTRY',
  /** more than MAX_PENDING_BYTES wait to be written. */
  busy: 'AGENT_ERR_SINK_BUSY',
  /** the sink is closed (or closing). */
  closed: 'AGENT_ERR_SINK_CLOSED',
  /** a write, sync or file operation failed; the sink must be reopened. */
  failed: 'AGENT_ERR_SINK_FAILED',
  /** the checkpoint or a data file is damaged beyond a torn last line. */
  corrupt: 'AGENT_ERR_SINK_CORRUPT',
  /** another live process (or this one) has the sink directory open. */
  locked: 'AGENT_ERR_SINK_LOCKED',
  /** the sink directory is open to group or others, or not ours. */
  permissions: 'AGENT_ERR_SINK_PERMISSIONS',
} as const satisfies Record<string, ErrorCode>;

export type SinkErrorKind = keyof typeof SINK_ERROR_CODES;

export function sinkError(kind: SinkErrorKind, message: string, options: DmzErrorOptions = {}): DmzError {
  return new DmzError(SINK_ERROR_CODES[kind], message, options);
}

/** An I/O failure, with the system error as the cause. */
export function sinkStorageFailure(what: string, cause: unknown): DmzError {
  const reason = (cause as NodeJS.ErrnoException | undefined)?.code ?? 'error';
  return sinkError('failed', `sink storage failed while ${what} (${reason})`, { cause });
}

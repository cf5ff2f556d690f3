/**
 * One writer per log directory: two agents appending to one log would interleave frames and reuse
 * sequence numbers. The lock, and when a stale one is taken over (its agent killed, a power loss,
 * its pid now another program's), is relay/protocol/process-lock.ts, as for the relay's state.
 */
import { join } from 'node:path';
import {
  PROGRAM_COMMAND_LINES,
  takeProcessLock,
  type ProcessLock,
} from '../../../relay/protocol/process-lock.ts';
import { logError, storageFailure } from './log-errors.ts';

export const LOCK_FILE = 'log.lock';

export function lockLogDirectory(dir: string): ProcessLock {
  const path = join(dir, LOCK_FILE);
  return takeProcessLock(path, {
    program: PROGRAM_COMMAND_LINES.agent,
    // A second StreamLog in this process on the same directory would be a second writer.
    sameProcess: 'refuse',
    errors: {
      held: (holder) =>
        logError('locked', `another process (pid ${holder}) has this stream log open`, {
          hint: `stop it first; if pid ${holder} is no agent, remove ${path}`,
        }),
      unwritable: (cause) => storageFailure('locking the log', cause),
      contended: () => logError('locked', 'the stream log lock changed hands while it was being taken'),
    },
  });
}

/**
 * One relay per state directory. Two relays on one CA state would each publish CRLs, each consume
 * tokens and each open the enrollment port: the second must refuse to start, saying which process
 * holds the state. The lock, and when a stale one is taken over, is relay/protocol/process-lock.ts.
 * (Relays that share state on a distributed store are a later design, not this file's.)
 */
import { join } from 'node:path';
import { quote } from '../protocol/command-line.ts';
import { DmzError } from '../protocol/errors.ts';
import { PROGRAM_COMMAND_LINES, takeProcessLock, type ProcessLock } from '../protocol/process-lock.ts';

export const STATE_LOCK_FILE = 'relay.lock';

export function lockStateDirectory(stateDir: string): ProcessLock {
  const path = join(stateDir, STATE_LOCK_FILE);
  return takeProcessLock(path, {
    program: PROGRAM_COMMAND_LINES.relay,
    // A relay started again in this process (tests, an in-process restart) takes its state over.
    sameProcess: 'take over',
    errors: {
      held: (holder) =>
        new DmzError(
          'RELAY_ERR_STATE_LOCKED',
          `another relay (pid ${holder}) is running on the state directory ${quote(stateDir)}`,
          {
            hint: `stop it first, or give this relay a state directory of its own; if pid ${holder} is no relay, remove ${quote(path)}`,
          },
        ),
      unwritable: (cause) => lockFailure(path, cause),
      contended: () => lockFailure(path, new Error('the lock changed hands while it was being taken')),
    },
  });
}

function lockFailure(path: string, cause: unknown): DmzError {
  const reason = (cause as NodeJS.ErrnoException).code ?? (cause as Error).message;
  return new DmzError('RELAY_ERR_STATE_LOCKED', `cannot create the state lock ${quote(path)}: ${reason}`, {
    cause,
    hint: 'the relay needs write access to its state directory',
  });
}

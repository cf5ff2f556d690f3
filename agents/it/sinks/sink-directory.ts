/**
 * A sink's directory on disk: private (0700, this user's alone: it holds plant data, and a
 * directory others can write lets them plant lines), and held by one process at a time (two
 * writers would interleave lines and each believe its own cursors). The helpers are the ones every
 * private store uses (relay/protocol/file-permissions.ts, process-lock.ts), with sink errors.
 */
import { mkdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { quote } from '../../../relay/protocol/command-line.ts';
import { syncDirectory } from '../../../relay/protocol/durable-files.ts';
import { PRIVATE_DIRECTORY_MODE, refuseOpenPermissions } from '../../../relay/protocol/file-permissions.ts';
import { takeProcessLock, type ProcessLock } from '../../../relay/protocol/process-lock.ts';
import { SINK_ERROR_CODES, sinkError, sinkStorageFailure } from './sink-errors.ts';

export const SINK_LOCK_FILE = 'sink.lock';
/** The command line of the agent that holds a sink (for locks that recorded no command). */
const AGENT_PROGRAM = /dmz-agent|agents[\\/]cli/;

/** Creates the directory (0700) if needed; refuses one others can enter or that is not this user's. */
export async function prepareSinkDirectory(dir: string): Promise<void> {
  try {
    const created = await mkdir(dir, { recursive: true, mode: PRIVATE_DIRECTORY_MODE });
    if (created !== undefined) await syncDirectory(dirname(created));
    if (!(await stat(dir)).isDirectory()) throw new Error(`${dir} is not a directory`);
  } catch (cause) {
    throw sinkStorageFailure(`opening the sink directory ${quote(dir)}`, cause);
  }
  refuseOpenPermissions(dir, { code: SINK_ERROR_CODES.permissions });
}

export function lockSinkDirectory(dir: string): ProcessLock {
  const path = join(dir, SINK_LOCK_FILE);
  return takeProcessLock(path, {
    program: AGENT_PROGRAM,
    // A second sink in this process on the same directory would be a second writer.
    sameProcess: 'refuse',
    errors: {
      held: (holder) =>
        sinkError('locked', `another process (pid ${holder}) has the sink in ${quote(dir)} open`, {
          hint: `stop it first; if pid ${holder} is no agent, remove ${quote(path)}`,
        }),
      unwritable: (cause) => sinkStorageFailure(`locking the sink directory ${quote(dir)}`, cause),
      contended: () => sinkError('locked', `the sink lock ${quote(path)} changed hands while being taken`),
    },
  });
}

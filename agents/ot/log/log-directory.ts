/**
 * The log directory on disk: made private (0700, this user's alone) and its files written
 * crash-safe, by the helpers every private store uses (relay/protocol/file-permissions.ts and
 * durable-files.ts), with their failures told as stream log errors.
 */
import { join } from 'node:path';
import { createPrivateDirectory, replaceFileDurably } from '../../../relay/protocol/durable-files.ts';
import { refuseOpenPermissions } from '../../../relay/protocol/file-permissions.ts';
import { LOG_ERROR_CODES, storageFailure } from './log-errors.ts';

/** Writes (or replaces) one file of the log: after a power loss it is absent or whole. */
export async function writeLogFile(dir: string, name: string, contents: Uint8Array): Promise<void> {
  try {
    await replaceFileDurably(join(dir, name), contents);
  } catch (cause) {
    throw storageFailure(`writing ${name}`, cause);
  }
}

/**
 * Creates the log directory (0700) if needed and refuses one that others can enter or that is not
 * this user's: the log holds plant data, and a directory others can write lets them plant segments.
 */
export async function prepareLogDirectory(dir: string): Promise<void> {
  try {
    await createPrivateDirectory(dir);
  } catch (cause) {
    throw storageFailure('creating the log directory', cause);
  }
  refuseOpenPermissions(dir, { code: LOG_ERROR_CODES.permissions });
}

/**
 * Who may open the CA's state directory: its owner alone, and only while every file there that
 * the program opens is the owner's too. Every file written into the state (crl.pem, relay.pem,
 * pki.db's -wal and -shm, the ticket keys, the lock, the PKI audit log) is born its writer's and
 * 0600: written by root into the relay user's directory, it is unreadable by the relay, which
 * then cannot start, with an error that reads like a broken CA. So dmz-pki and the relay refuse,
 * before they change anything, a directory another user owns (root too), and a file in it that a
 * run as another user left behind (a root run killed before SQLite removed its pki.db-wal).
 *
 * One stat per file a program opens, a dozen at most, once at its start.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { quote } from '../relay/protocol/command-line.ts';
import { DmzError } from '../relay/protocol/errors.ts';
import { describeUser, userName } from '../relay/protocol/file-permissions.ts';
import { TICKET_KEY_FILE } from '../relay/server/session-tickets.ts';
import { AUDIT_LOG_FILE, DATABASE_SIDE_FILES, STATE_FILES } from './state-layout.ts';

/** A program that opens the state directory, as a refusal names it. */
export interface StateOpener {
  /** How to run it, after `runuser -u OWNER -- `, in the hint of a refusal. */
  readonly command: string;
  /** The unit that runs it as the owner, when it is a service (`dmz-relay`). */
  readonly service?: string;
  /** The names of the files it opens there; one that is not there yet it creates as itself. */
  readonly files: readonly string[];
}

/** dmz-pki, whatever the command: `backup` reads every file of the state and `restore` writes them. */
export const PKI_CLI_OPENER: StateOpener = {
  command: 'dmz-pki ...',
  files: [...Object.values(STATE_FILES), ...DATABASE_SIDE_FILES, AUDIT_LOG_FILE, TICKET_KEY_FILE],
};

/** Throws PKI_ERR_STATE_OWNER unless this user owns `stateDir` and every file `opener` opens in it. */
export function refuseOtherOwner(stateDir: string, opener: StateOpener): void {
  // POSIX owners mean nothing on Windows (file-permissions.ts).
  if (process.platform === 'win32') return;
  const uid = process.geteuid?.();
  const owner = ownerOf(stateDir);
  if (uid === undefined || owner === undefined) return;
  if (owner !== uid) {
    throw new DmzError(
      'PKI_ERR_STATE_OWNER',
      `the state directory ${quote(stateDir)} belongs to ${describeUser(owner)}, not to this user (uid ${uid}): files written now would be unreadable by its owner`,
      { hint: runAsOwnerHint(owner, opener) },
    );
  }
  for (const file of opener.files) {
    const path = join(stateDir, file);
    const fileOwner = ownerOf(path);
    if (fileOwner === undefined || fileOwner === owner) continue;
    throw new DmzError(
      'PKI_ERR_STATE_OWNER',
      `${quote(path)} belongs to ${describeUser(fileOwner)}, not to ${describeUser(owner)}, the owner of the state directory: left by a run as another user, it may be unreadable by the relay and dmz-pki`,
      { hint: `give it back, as root: chown ${userName(owner) ?? owner} ${quote(path)}` },
    );
  }
}

/**
 * The owner of `path`; undefined when it is not there (its opener creates it), or cannot even be
 * looked at: then opening it fails, and the opener's own error says why.
 */
function ownerOf(path: string): number | undefined {
  try {
    return statSync(path, { throwIfNoEntry: false })?.uid;
  } catch {
    return undefined;
  }
}

function runAsOwnerHint(owner: number, opener: StateOpener): string {
  const name = userName(owner);
  const run =
    name === undefined
      ? `run it as uid ${owner}, the directory's owner`
      : `run it as the directory's owner: runuser -u ${name} -- ${opener.command}`;
  return opener.service === undefined
    ? run
    : `${run}, or start its service: systemctl start ${opener.service}`;
}

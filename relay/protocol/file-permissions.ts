/**
 * Files and directories for one user alone: the CA's state, an agent's credentials, the stream
 * log, the relay's audit log and lock files. They are created with these modes whatever the umask,
 * and an existing one is checked before it is trusted: a key others can read is leaked, and a
 * directory others can write lets them swap what decides trust (ca.pem) or plant data (a segment).
 */
import { readFileSync, statSync } from 'node:fs';
import { quote } from './command-line.ts';
import { DmzError, type ErrorCode } from './errors.ts';

export const PRIVATE_FILE_MODE = 0o600;
export const PRIVATE_DIRECTORY_MODE = 0o700;
/** Any group or world bit lets another local user read, enter or write. */
const GROUP_OR_WORLD = 0o077;

export interface PrivateAccessRule {
  /** The catalog code of the refusal; PKI_ERR_STATE_PERMISSIONS unless the caller has its own. */
  readonly code?: ErrorCode;
  /**
   * `this user` (the default) also refuses a path another user owns: that user could change its
   * modes or contents at any time. `any` checks the mode bits only.
   */
  readonly owner?: 'this user' | 'any';
  /**
   * For a file the operator names in a setting (`--passphrase-file`): the refusal names that
   * setting and the mode found, and says to `chmod 600` it, as a file is made private.
   */
  readonly setting?: string;
}

/** Throws unless `path` is open to its owner alone (and, by default, owned by this user). */
export function refuseOpenPermissions(path: string, rule: PrivateAccessRule = {}): void {
  // POSIX mode bits and owners mean nothing on Windows; there the directory's ACL is the operator's job.
  if (process.platform === 'win32') return;
  const info = statSync(path);
  const code = rule.code ?? 'PKI_ERR_STATE_PERMISSIONS';
  if ((info.mode & GROUP_OR_WORLD) !== 0) throw openToOthers(path, info.mode, code, rule.setting);
  const uid = process.getuid?.();
  if (rule.owner !== 'any' && info.uid !== uid) {
    throw new DmzError(code, `${quote(path)} belongs to uid ${info.uid}, not to this user (uid ${uid})`, {
      hint: `chown it to this user, or run as uid ${info.uid}`,
    });
  }
}

function openToOthers(path: string, mode: number, code: ErrorCode, setting: string | undefined): DmzError {
  if (setting === undefined) {
    return new DmzError(code, `${quote(path)} is open to group or others`, {
      hint: `make it the owner's alone: chmod go-rwx ${quote(path)}`,
    });
  }
  const octal = (mode & 0o777).toString(8).padStart(4, '0');
  return new DmzError(code, `${quote(path)} (${setting}) is open to group or others (mode ${octal})`, {
    hint: `make it the owner's alone: chmod 600 ${quote(path)}`,
  });
}

/**
 * `uid 65534 (nobody)`, or `uid 65534` when /etc/passwd does not name it (a user from a
 * directory service): for errors only, so a lookup that fails just leaves the name out.
 */
export function describeUser(uid: number): string {
  const name = userName(uid);
  return name === undefined ? `uid ${uid}` : `uid ${uid} (${name})`;
}

/** The name /etc/passwd gives `uid`, if any. */
export function userName(uid: number): string | undefined {
  let passwd: string;
  try {
    passwd = readFileSync('/etc/passwd', 'utf8');
  } catch {
    return undefined;
  }
  for (const line of passwd.split('\n')) {
    const [name, , id] = line.split(':');
    if (name !== undefined && name !== '' && id === String(uid)) return name;
  }
  return undefined;
}

/** EACCES or EPERM: a file that is there but may not be opened, as opposed to one that is missing. */
export function isPermissionError(cause: unknown): boolean {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  return code === 'EACCES' || code === 'EPERM';
}

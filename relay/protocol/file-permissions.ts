/**
 * Files and directories for one user alone: the CA's state, an agent's credentials, the stream
 * log, the relay's audit log and lock files. They are created with these modes whatever the umask,
 * and an existing one is checked before it is trusted: a key others can read is leaked, and a
 * directory others can write lets them swap what decides trust (ca.pem) or plant data (a segment).
 */
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { quote } from './command-line.ts';
import { DmzError, type ErrorCode } from './errors.ts';

export const PRIVATE_FILE_MODE = 0o600;
export const PRIVATE_DIRECTORY_MODE = 0o700;
/** Any group or world bit lets another local user read, enter or write. */
const GROUP_OR_WORLD = 0o077;
/** A group or world write bit lets another local user change a file, or swap a directory's entries. */
const GROUP_WRITE = 0o020;
const WORLD_WRITE = 0o002;
/** In a sticky directory (/tmp) only an entry's owner, the directory's owner and root rename or remove it. */
const STICKY = 0o1000;
const ROOT_UID = 0;

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

/**
 * Throws unless only root and this user can change what `path` says, as sshd's StrictModes wants
 * of authorized_keys: for the files that decide who may do what (relay.yaml with its policy,
 * agent.yaml with its writable points and services, a pinned writer key). Others may read them
 * (they hold no secret), but anyone who could write one would grant themselves rights. So the file
 * and every directory above it (both the path as given and where its symbolic links lead: each
 * name can be replaced by whoever may write the directory holding it) must be owned by root or by
 * this user, and none writable by others, nor by a group but the owner's own (isPrivateGroupOf). A
 * sticky directory (/tmp, 1777) is accepted too: there others may add names but cannot rename or
 * remove ours.
 */
export function refuseWritableByOthers(path: string, code: ErrorCode = 'CONFIG_ERR_PERMISSIONS'): void {
  if (process.platform === 'win32') return;
  const file = realpathSync(path);
  refuseChangeableByOthers(file, quote(path), statSync(file), code);
  const above = `above ${quote(path)}`;
  const directories = new Set([
    ...ancestors(realpathSync(dirname(resolve(path)))),
    ...ancestors(dirname(file)),
  ]);
  for (const directory of directories) {
    const info = statSync(directory);
    if ((info.mode & STICKY) !== 0 && isTrustedOwner(info.uid)) continue;
    refuseChangeableByOthers(directory, `${quote(directory)} (${above})`, info, code);
  }
}

/** `directory` and each directory above it, up to the root. */
function ancestors(directory: string): string[] {
  const found = [directory];
  for (let next = dirname(directory); next !== found.at(-1); next = dirname(next)) found.push(next);
  return found;
}

function isTrustedOwner(uid: number): boolean {
  return uid === ROOT_UID || uid === process.getuid?.();
}

/** `path` is the file or a directory above it, `named` how the refusal names it. */
function refuseChangeableByOthers(
  path: string,
  named: string,
  info: { readonly mode: number; readonly uid: number; readonly gid: number },
  code: ErrorCode,
): void {
  const groupMayWrite = (info.mode & GROUP_WRITE) !== 0 && !isPrivateGroupOf(info.gid, info.uid);
  if ((info.mode & WORLD_WRITE) !== 0 || groupMayWrite) {
    throw new DmzError(
      code,
      `${named} can be changed by group or others (mode ${octalMode(info.mode)}): whoever writes it decides who may do what`,
      { hint: `chmod go-w ${quote(path)}` },
    );
  }
  if (!isTrustedOwner(info.uid)) {
    throw new DmzError(
      code,
      `${named} belongs to ${describeUser(info.uid)}, neither root nor this user (uid ${process.getuid?.()}): its owner can change it`,
      { hint: `chown root ${quote(path)}, or run as its owner` },
    );
  }
}

/**
 * Debian and Ubuntu give each user a group of their own, and with it a umask of 002 (login.defs
 * USERGROUPS_ENAB): a checkout there is group-writable, but by its owner alone. Debian's sshd
 * accepts that (its user-group-modes patch), and so does this, on the same terms: the group has
 * exactly one member, the owner, as its primary group in /etc/passwd or listed in /etc/group. A
 * group /etc/group does not name (a directory service's) stays refused, as does an empty one.
 */
function isPrivateGroupOf(gid: number, owner: number): boolean {
  const group = accountEntries('/etc/group').find(([, , id]) => id === String(gid));
  if (group === undefined) return false;
  const users = accountEntries('/etc/passwd');
  const listed = (group[3] ?? '').split(',').filter((name) => name !== '');
  const members = new Set([
    ...users.filter(([, , , primary]) => primary === String(gid)).map(([, , uid]) => uid),
    // A listed name /etc/passwd does not know is someone else: the name itself stands for them.
    ...listed.map((name) => users.find(([user]) => user === name)?.[2] ?? name),
  ]);
  return members.size === 1 && members.has(String(owner));
}

/** `0644`, `1777`: the permission bits as chmod takes them. */
function octalMode(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

function openToOthers(path: string, mode: number, code: ErrorCode, setting: string | undefined): DmzError {
  if (setting === undefined) {
    return new DmzError(code, `${quote(path)} is open to group or others`, {
      hint: `make it the owner's alone: chmod go-rwx ${quote(path)}`,
    });
  }
  return new DmzError(
    code,
    `${quote(path)} (${setting}) is open to group or others (mode ${octalMode(mode & 0o777)})`,
    {
      hint: `make it the owner's alone: chmod 600 ${quote(path)}`,
    },
  );
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
  return accountEntries('/etc/passwd').find(([, , id]) => id === String(uid))?.[0];
}

/** The named lines of /etc/passwd or /etc/group, split at their colons; none if it cannot be read. */
function accountEntries(file: '/etc/passwd' | '/etc/group'): string[][] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .map((line) => line.split(':'))
    .filter(([name]) => name !== undefined && name !== '');
}

/** EACCES or EPERM: a file that is there but may not be opened, as opposed to one that is missing. */
export function isPermissionError(cause: unknown): boolean {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  return code === 'EACCES' || code === 'EPERM';
}

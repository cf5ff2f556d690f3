/**
 * The local write window: a file in the OT agent's state directory, `writes/window.json`, that
 * says until when writes to points marked `window: true` are allowed. Only `dmz-agent writes open`
 * on the OT host writes it, as the agent's user (the state directory is that user's alone, 0700):
 * nothing that comes over the relay can, as no request handler writes files but the nonce record
 * and the audit log. The running agent reads it at every such write (one small read), so a window
 * opened or closed takes effect on the next command, and one that has run out is closed whatever
 * the file says. A file that is not the agent user's alone (0600), or does not parse, is a closed
 * window. So is one that says it was opened later than now (the host's clock stepped back since:
 * the window would otherwise stay open for the step's length too), or for longer than
 * `ot.writes.maxWindow` (a hand-edited file).
 */
import { readFile, rm, stat } from 'node:fs/promises';
import { hostname, userInfo } from 'node:os';
import { join } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { quote } from '../../../relay/protocol/command-line.ts';
import { DmzError } from '../../../relay/protocol/errors.ts';
import { refuseOpenPermissions } from '../../../relay/protocol/file-permissions.ts';
import {
  createPrivateDirectory,
  replaceFileDurably,
  syncDirectory,
} from '../../../relay/protocol/durable-files.ts';
import { formatDuration } from '../../../pki/duration.ts';

export const WINDOW_FILE = 'window.json';
/** The shortest window: shorter than a minute is a typo, not a maintenance job. */
export const MIN_WINDOW_MS = 60_000;

const WindowSchema = Type.Object(
  {
    openedAt: Type.Integer({ minimum: 0 }),
    until: Type.Integer({ minimum: 0 }),
    /** Who opened it: the local user and host, for the audit log and `writes status`. */
    by: Type.String({ maxLength: 256 }),
  },
  { additionalProperties: false },
);

export type WriteWindow = Static<typeof WindowSchema>;

export type WindowState =
  | { readonly open: true; readonly window: WriteWindow }
  /** `problem`: the file is there but not trusted (its path and why), for the OT host only. */
  | { readonly open: false; readonly reason: string; readonly problem?: string };

/** The writes directory of an OT agent's state: the window, the nonce record, the audit log. */
export function writesDir(state: string): string {
  return join(state, 'writes');
}

/**
 * Refuses to touch the window of `state` as anyone but its owner, the agent's user: a window that
 * root opens is a file the agent does not trust (it is not its own), so the agent keeps it closed
 * while `writes status`, run as root, would say it is open.
 */
export async function checkWindowUser(state: string): Promise<void> {
  const uid = process.getuid?.();
  if (uid === undefined) return; // No POSIX owners (Windows): the directory's ACL is the operator's job.
  let owner: number;
  try {
    owner = (await stat(state)).uid;
  } catch (cause) {
    throw windowError('find', state, cause);
  }
  if (owner !== uid) {
    throw new DmzError(
      'AGENT_ERR_WRITE_WINDOW',
      `the agent's state directory ${quote(state)} belongs to uid ${owner}, not to this user (uid ${uid}): the agent would not trust a window this user opens`,
      { hint: `run it as the agent's user (uid ${owner}): runuser -u dmz-agent -- dmz-agent writes ...` },
    );
  }
}

/** Opens (or extends or shortens) the window to `durationMs` from now, durably. */
export async function openWindow(
  state: string,
  durationMs: number,
  maxWindowMs: number,
  now: number = Date.now(),
): Promise<WriteWindow> {
  if (!(durationMs >= MIN_WINDOW_MS && durationMs <= maxWindowMs)) {
    throw new DmzError(
      'AGENT_ERR_WRITE_WINDOW',
      `a write window lasts from ${formatDuration(MIN_WINDOW_MS)} to ${formatDuration(maxWindowMs)} (ot.writes.maxWindow)`,
    );
  }
  const window: WriteWindow = {
    openedAt: now,
    until: now + durationMs,
    by: `${userInfo().username}@${hostname()}`,
  };
  const dir = writesDir(state);
  try {
    await createPrivateDirectory(dir);
    await replaceFileDurably(join(dir, WINDOW_FILE), `${JSON.stringify(window)}\n`);
  } catch (cause) {
    throw windowError('open', dir, cause);
  }
  return window;
}

/** Closes the window at once; true when it was open. */
export async function closeWindow(
  state: string,
  maxWindowMs: number,
  now: number = Date.now(),
): Promise<boolean> {
  const wasOpen = (await readWindow(state, maxWindowMs, now)).open;
  const dir = writesDir(state);
  try {
    await rm(join(dir, WINDOW_FILE), { force: true });
    await syncDirectory(dir).catch((error: unknown) => {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    });
  } catch (cause) {
    throw windowError('close', dir, cause);
  }
  return wasOpen;
}

/** Whether the window is open now; never throws (anything unreadable is a closed window). */
export async function readWindow(
  state: string,
  maxWindowMs: number,
  now: number = Date.now(),
): Promise<WindowState> {
  const path = join(writesDir(state), WINDOW_FILE);
  let text: string;
  try {
    refuseOpenPermissions(path, { code: 'AGENT_ERR_WRITE_WINDOW' });
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { open: false, reason: 'not opened' };
    return {
      open: false,
      reason: 'its file is not trusted',
      problem: `${quote(path)}: ${(error as Error).message}`,
    };
  }
  let window: unknown;
  try {
    window = JSON.parse(text);
  } catch {
    window = undefined;
  }
  if (!Value.Check(WindowSchema, window))
    return {
      open: false,
      reason: 'its file is damaged',
      problem: `${quote(path)} is not a window the CLI wrote`,
    };
  if (window.until - window.openedAt > maxWindowMs)
    return {
      open: false,
      reason: 'it was opened for longer than ot.writes.maxWindow',
      problem: `${quote(path)} is not a window the CLI wrote`,
    };
  if (window.openedAt > now)
    return {
      open: false,
      reason: `it was opened at ${new Date(window.openedAt).toISOString()}, later than this host's clock says it is now`,
    };
  if (window.until <= now)
    return { open: false, reason: `closed at ${new Date(window.until).toISOString()}` };
  return { open: true, window };
}

function windowError(action: string, dir: string, cause: unknown): DmzError {
  return new DmzError(
    'AGENT_ERR_WRITE_WINDOW',
    `cannot ${action} the write window in ${quote(dir)}: ${(cause as Error).message}`,
    { cause, hint: "run it as the agent's user, on the OT host" },
  );
}

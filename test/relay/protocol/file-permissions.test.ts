/**
 * One permission check (relay/protocol/file-permissions.ts) for every private store: the CA's
 * state, an agent's credentials and the stream log refuse a directory others can enter with the
 * same words and the same hint; only the code says whose it is.
 */
import assert from 'node:assert/strict';
import { chmod, chown, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { prepareCredentialDirectory } from '../../../agents/credentials.ts';
import { openStreamLog } from '../../../agents/ot/log/stream-log.ts';
import { openPkiStore } from '../../../pki/store.ts';

/** Root may hand a directory to nobody (65534) to show what another owner means. */
const NOBODY = 65_534;
const AS_ROOT = process.getuid?.() === 0;

const users: readonly {
  readonly name: string;
  readonly open: (dir: string) => Promise<unknown>;
  readonly code: string;
  /** Whether a directory owned by another user is refused too. */
  readonly ownerChecked: boolean;
  /** The refusal of another user's directory, when not the common one (the CA's says how to run as it). */
  readonly otherOwnerRefusal?: (dir: string) => { code: string; message: string };
}[] = [
  {
    name: 'the CA store',
    open: (dir) => Promise.resolve().then(() => openPkiStore(dir).close()),
    code: 'PKI_ERR_STATE_PERMISSIONS',
    ownerChecked: true,
    otherOwnerRefusal: (dir) => ({
      code: 'PKI_ERR_STATE_OWNER',
      message: `the state directory ${JSON.stringify(dir)} belongs to uid ${NOBODY} (nobody), not to this user (uid 0): files written now would be unreadable by its owner`,
    }),
  },
  {
    name: 'an agent credential directory',
    open: (dir) => prepareCredentialDirectory(dir, { force: true }),
    code: 'PKI_ERR_STATE_PERMISSIONS',
    ownerChecked: true,
  },
  {
    name: 'the stream log',
    open: async (dir) => (await openStreamLog({ dir, maxBytes: 1024 * 1024, maxAgeMs: 3_600_000 })).close(),
    code: 'AGENT_ERR_LOG_PERMISSIONS',
    ownerChecked: true,
  },
];

describe(
  'file permissions - one check for every private store',
  { skip: process.platform === 'win32' },
  () => {
    let root: string;
    let count = 0;
    const freshDir = async (mode: number): Promise<string> => {
      count += 1;
      const dir = join(root, `dir-${count}`);
      await mkdir(dir);
      await chmod(dir, mode);
      return dir;
    };
    before(async () => {
      root = await mkdtemp(join(tmpdir(), 'dmz-file-permissions-'));
    });
    after(() => rm(root, { recursive: true, force: true }));

    for (const user of users) {
      it(`file permissions - ${user.name} refuses a directory its group can enter (0750)`, async () => {
        const dir = await freshDir(0o750);
        await assert.rejects(user.open(dir), {
          code: user.code,
          message: `${JSON.stringify(dir)} is open to group or others`,
          hint: `make it the owner's alone: chmod go-rwx ${JSON.stringify(dir)}`,
        });
      });

      it(
        `file permissions - ${user.name} ${user.ownerChecked ? 'refuses' : 'accepts'} a 0700 directory of another user`,
        { skip: !AS_ROOT && 'needs root to give a directory away' },
        async () => {
          const dir = await freshDir(0o700);
          await chown(dir, NOBODY, NOBODY);
          if (!user.ownerChecked) {
            await user.open(dir);
            return;
          }
          await assert.rejects(
            user.open(dir),
            user.otherOwnerRefusal?.(dir) ?? {
              code: user.code,
              message: `${JSON.stringify(dir)} belongs to uid ${NOBODY}, not to this user (uid 0)`,
            },
          );
          assert.deepEqual(await readdir(dir), [], 'nothing made in it');
        },
      );
    }
  },
);

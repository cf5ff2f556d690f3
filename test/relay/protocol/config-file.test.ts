/**
 * relay.yaml and agent.yaml decide who may do what: read through relay/protocol/config-file.ts,
 * each is refused when another local user could change it (the file, or a directory above it),
 * as sshd's StrictModes refuses an authorized_keys file. Read-only for others is fine.
 */
import assert from 'node:assert/strict';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readConfigFile } from '../../../relay/protocol/config-file.ts';

const NOBODY = 65_534;
/** nogroup: nobody's primary group (sync's and _apt's too here), so no one's private group. */
const SHARED_GROUP = 65_534;
const AS_ROOT = process.getuid?.() === 0;
/** A group-writable file is refused only for a group others are in (user private groups are fine). */
const NEEDS_ROOT = !AS_ROOT && 'needs root to give a file a group others share';
const q = (path: string) => JSON.stringify(path);

/** Whether gid 0 is root's alone here, as on Debian and Ubuntu: no other user in it. */
async function rootGroupIsPrivate(): Promise<boolean> {
  const passwd = (await readFile('/etc/passwd', 'utf8')).split('\n');
  const inGroupZero = passwd.filter((line) => line.split(':')[3] === '0');
  const group = await readFile('/etc/group', 'utf8');
  return (
    inGroupZero.length === 1 && inGroupZero[0]?.startsWith('root:') === true && /^root:[^:]*:0:$/m.test(group)
  );
}

describe(
  'config file - refused when another user could change it',
  { skip: process.platform === 'win32' },
  () => {
    let root: string;
    let count = 0;
    /** A fresh directory of `mode` under the scratch root (0700, this user's), with a 0644 config in it. */
    const configIn = async (mode: number, fileMode = 0o644): Promise<{ dir: string; file: string }> => {
      count += 1;
      const dir = join(root, `case-${count}`);
      await mkdir(dir);
      await chmod(dir, mode);
      const file = join(dir, 'relay.yaml');
      await writeFile(file, 'trustDomain: plant.example\n');
      await chmod(file, fileMode);
      return { dir, file };
    };
    before(async () => {
      root = await mkdtemp(join(tmpdir(), 'dmz-config-file-'));
    });
    after(() => rm(root, { recursive: true, force: true }));

    it('config file - a 0644 file in a 0755 directory is read (others may read a config)', async () => {
      const { file } = await configIn(0o755);
      assert.deepEqual(await readConfigFile(file), { trustDomain: 'plant.example' });
    });

    for (const [who, mode, skip] of [
      ['a group others are in', 0o664, NEEDS_ROOT],
      ['everyone', 0o666, false],
    ] as const) {
      it(
        `config file - a file ${who} may write (${mode.toString(8)}) is refused, naming it, its mode and the chmod`,
        { skip },
        async () => {
          const { file } = await configIn(0o755, mode);
          if (AS_ROOT) await chown(file, 0, SHARED_GROUP);
          await assert.rejects(readConfigFile(file), {
            code: 'CONFIG_ERR_PERMISSIONS',
            message: `${q(file)} can be changed by group or others (mode 0${mode.toString(8)}): whoever writes it decides who may do what`,
            hint: `chmod go-w ${q(file)}`,
          });
        },
      );
    }

    it(
      'config file - a 0644 file in a directory a group of others may write (0775) is refused: the name could be swapped',
      { skip: NEEDS_ROOT },
      async () => {
        const { dir, file } = await configIn(0o775);
        await chown(dir, 0, SHARED_GROUP);
        await assert.rejects(readConfigFile(file), {
          code: 'CONFIG_ERR_PERMISSIONS',
          message: `${q(dir)} (above ${q(file)}) can be changed by group or others (mode 0775): whoever writes it decides who may do what`,
          hint: `chmod go-w ${q(dir)}`,
        });
      },
    );

    it('config file - a directory further up that others may write (0777) is refused too', async () => {
      const { dir: outer } = await configIn(0o777);
      const inner = join(outer, 'dmz');
      await mkdir(inner, { mode: 0o755 });
      const file = join(inner, 'relay.yaml');
      await writeFile(file, 'trustDomain: plant.example\n', { mode: 0o644 });
      await assert.rejects(readConfigFile(file), {
        code: 'CONFIG_ERR_PERMISSIONS',
        message: `${q(outer)} (above ${q(file)}) can be changed by group or others (mode 0777): whoever writes it decides who may do what`,
      });
    });

    it(
      "config file - group-writable by the owner's own group alone (Debian's user private groups, umask 002) is accepted",
      { skip: !AS_ROOT && 'needs root to know a private group here' },
      async () => {
        const { dir, file } = await configIn(0o775, 0o664);
        await chown(dir, 0, 0);
        await chown(file, 0, 0);
        // Where gid 0 has members besides root, the same file is no longer its owner's alone.
        if (await rootGroupIsPrivate()) {
          assert.deepEqual(await readConfigFile(file), { trustDomain: 'plant.example' });
        } else {
          await assert.rejects(readConfigFile(file), { code: 'CONFIG_ERR_PERMISSIONS' });
        }
      },
    );

    it('config file - a sticky directory (1777, as /tmp) is accepted: others cannot rename or remove our file', async () => {
      const { file } = await configIn(0o1777);
      assert.deepEqual(await readConfigFile(file), { trustDomain: 'plant.example' });
    });

    it('config file - a symbolic link is judged by the file it leads to', async () => {
      const { file: target } = await configIn(0o755, 0o666);
      const { dir } = await configIn(0o755);
      const link = join(dir, 'linked.yaml');
      await symlink(target, link);
      await assert.rejects(readConfigFile(link), {
        code: 'CONFIG_ERR_PERMISSIONS',
        message: `${q(link)} can be changed by group or others (mode 0666): whoever writes it decides who may do what`,
        hint: `chmod go-w ${q(target)}`,
      });
    });

    it(
      'config file - a 0644 file of another user (not root) is refused: its owner could chmod it',
      { skip: !AS_ROOT && 'needs root to give a file away' },
      async () => {
        const { file } = await configIn(0o755);
        await chown(file, NOBODY, NOBODY);
        await assert.rejects(readConfigFile(file), {
          code: 'CONFIG_ERR_PERMISSIONS',
          message: `${q(file)} belongs to uid ${NOBODY} (nobody), neither root nor this user (uid 0): its owner can change it`,
          hint: `chown root ${q(file)}, or run as its owner`,
        });
      },
    );

    it(
      'config file - a sticky directory of another user is not trusted: its owner may rename what is in it',
      { skip: !AS_ROOT && 'needs root to give a directory away' },
      async () => {
        const { dir, file } = await configIn(0o1777);
        await chown(dir, NOBODY, NOBODY);
        await assert.rejects(readConfigFile(file), {
          code: 'CONFIG_ERR_PERMISSIONS',
          message: `${q(dir)} (above ${q(file)}) can be changed by group or others (mode 1777): whoever writes it decides who may do what`,
        });
      },
    );
  },
);

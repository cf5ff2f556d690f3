import assert from 'node:assert/strict';
import { chmod, mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { LOG_ERROR_CODES } from '../../../../agents/ot/log/log-errors.ts';
import { makeTempDir, openTestLog, recordsFor, rejectionCode } from './log-fixture.ts';

const PERMISSION_BITS = 0o777;

describe(
  'stream log - permissions and ownership of the directory',
  { skip: process.platform === 'win32' },
  () => {
    it('creates its directory 0700 and every file 0600, whatever the umask', async (t) => {
      const dir = await makeTempDir(t);
      const umask = process.umask(0);
      t.after(() => process.umask(umask));
      const log = await openTestLog(dir, { maxBytes: 16 * 1024 });
      for (let seq = 1; seq <= 2000; seq += 20)
        await log.append('press-7/p', recordsFor('press-7/p', seq, 20));
      await log.enforceRetention();
      const names = await readdir(dir);
      // Segments, their indexes, the checkpoint written by retention and the lock of the open log.
      for (const suffix of ['.seg', '.idx', '.checkpoint', '.lock']) {
        assert.ok(
          names.some((name) => name.endsWith(suffix)),
          `a ${suffix} file exists`,
        );
      }
      assert.equal((await stat(dir)).mode & PERMISSION_BITS, 0o700);
      for (const name of names)
        assert.equal((await stat(join(dir, name))).mode & PERMISSION_BITS, 0o600, name);
      await log.close();
    });

    it('refuses a directory that group or others can enter', async (t) => {
      const dir = await makeTempDir(t);
      await mkdir(dir, { mode: 0o700 });
      await chmod(dir, 0o750);
      assert.equal(await rejectionCode(openTestLog(dir)), LOG_ERROR_CODES.permissions);
      assert.deepEqual(await readdir(dir), [], 'nothing was written');
    });

    it('one open log per directory: a second open is refused until the first is closed', async (t) => {
      const dir = await makeTempDir(t);
      const first = await openTestLog(dir);
      assert.equal(await rejectionCode(openTestLog(dir)), LOG_ERROR_CODES.locked);
      await first.append('press-7/p', recordsFor('press-7/p', 1, 1));
      await first.close();
      const second = await openTestLog(dir);
      assert.equal(second.lastSeq('press-7/p'), 1);
      await second.close();
    });
  },
);

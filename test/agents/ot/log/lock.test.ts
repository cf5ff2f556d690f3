/**
 * The stream log's lock is the relay's (relay/protocol/process-lock.ts): a lock left by an agent
 * killed with SIGKILL, by an earlier boot, or naming a pid that another program (or, in a restarted
 * container, this very process) has now is taken over; a live holder keeps it.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { LOCK_FILE } from '../../../../agents/ot/log/directory-lock.ts';
import { LOG_ERROR_CODES } from '../../../../agents/ot/log/log-errors.ts';
import { DmzError } from '../../../../relay/protocol/errors.ts';
import { ON_LINUX, STALE_LOCK_ROWS, useBystander } from '../../../support/stale-locks.ts';
import { makeTempDir, openTestLog, recordsFor } from './log-fixture.ts';

describe('stream log - stale or held lock', { skip: process.platform === 'win32' }, () => {
  const otherPid = useBystander();

  for (const row of STALE_LOCK_ROWS) {
    it(
      `stream log lock - ${row.name}: ${row.takenOver ? 'taken over' : 'refused'}`,
      { skip: row.linuxOnly === true && !ON_LINUX },
      async (t) => {
        const dir = await makeTempDir(t);
        await mkdir(dir, { mode: 0o700 });
        const path = join(dir, LOCK_FILE);
        const written = row.lock(otherPid());
        await writeFile(path, written, { mode: 0o600 });
        if (row.takenOver) {
          const log = await openTestLog(dir);
          assert.equal((JSON.parse(readFileSync(path, 'utf8')) as { pid: number }).pid, process.pid);
          await log.append('press-7/p', recordsFor('press-7/p', 1, 1));
          await log.close();
          assert.equal(existsSync(path), false, 'closing released the lock');
        } else {
          await assert.rejects(
            openTestLog(dir),
            (error: unknown) =>
              error instanceof DmzError &&
              error.code === LOG_ERROR_CODES.locked &&
              error.message === `another process (pid ${otherPid()}) has this stream log open`,
          );
          assert.equal(readFileSync(path, 'utf8'), written, 'the lock is left as it was');
        }
      },
    );
  }
});

/**
 * The state lock after a power loss or a pid reuse: a lock is taken over unless the process it
 * names is still the relay that took it (same boot, same command line); a live relay keeps it.
 * The cases are those of every user of the lock (test/support/stale-locks.ts).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { lockStateDirectory, STATE_LOCK_FILE } from '../../../relay/server/state-lock.ts';
import { DmzError } from '../../../relay/protocol/errors.ts';
import { ON_LINUX, STALE_LOCK_ROWS, useBystander } from '../../support/stale-locks.ts';

describe('state lock - stale or held', () => {
  let root: string;
  const otherPid = useBystander();

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'dmz-state-lock-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  for (const [index, row] of STALE_LOCK_ROWS.entries()) {
    it(
      `state lock - ${row.name}: ${row.takenOver ? 'taken over' : 'refused'}`,
      {
        skip: row.linuxOnly === true && !ON_LINUX,
      },
      async () => {
        const dir = join(root, `case-${index}`);
        await mkdir(dir, { recursive: true });
        const path = join(dir, STATE_LOCK_FILE);
        const written = row.lock(otherPid());
        await writeFile(path, written);
        if (row.takenOver) {
          const lock = lockStateDirectory(dir);
          assert.equal((JSON.parse(readFileSync(path, 'utf8')) as { pid: number }).pid, process.pid);
          lock.release();
        } else {
          assert.throws(
            () => lockStateDirectory(dir),
            (error: unknown) =>
              error instanceof DmzError &&
              error.code === 'RELAY_ERR_STATE_LOCKED' &&
              error.message.startsWith(`another relay (pid ${otherPid()}) is running`),
          );
          assert.equal(readFileSync(path, 'utf8'), written, 'the lock is left as it was');
        }
      },
    );
  }
});

/**
 * The state lock after a power loss or a pid reuse: a lock is taken over unless the process it
 * names is still the relay that took it (same boot, same command line); a live relay keeps it.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { describeHolder, lockStateDirectory, STATE_LOCK_FILE } from '../../../relay/server/state-lock.ts';
import { DmzError } from '../../../relay/protocol/errors.ts';

const ON_LINUX = process.platform === 'linux';

describe('state lock - stale or held', () => {
  let root: string;
  /** A live process that is no relay. */
  let other: ChildProcess;
  let otherPid: number;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'dmz-state-lock-'));
    other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    otherPid = other.pid ?? 0;
  });
  after(async () => {
    other.kill('SIGKILL');
    await rm(root, { recursive: true, force: true });
  });

  const rows: readonly {
    name: string;
    lock: () => string;
    takenOver: boolean;
    linuxOnly?: boolean;
  }[] = [
    { name: 'a bare pid 1 (pid reused after a reboot)', lock: () => '1\n', takenOver: true, linuxOnly: true },
    {
      name: 'a bare pid of a live process that is no relay',
      lock: () => `${otherPid}\n`,
      takenOver: true,
      linuxOnly: true,
    },
    {
      name: 'pid 1 with another command line recorded',
      lock: () => `${JSON.stringify({ ...describeHolder(1), command: 'node\0bin/dmz-relay.js\0' })}\n`,
      takenOver: true,
      linuxOnly: true,
    },
    {
      name: 'a live holder recorded in an earlier boot',
      lock: () => `${JSON.stringify({ ...describeHolder(otherPid), bootId: 'an-earlier-boot' })}\n`,
      takenOver: true,
      linuxOnly: true,
    },
    { name: 'a pid no process has', lock: () => '2147483646\n', takenOver: true },
    { name: 'a half-written lock', lock: () => '{"pid":', takenOver: true },
    {
      name: 'the live holder that took it (same boot, same command line)',
      lock: () => `${JSON.stringify(describeHolder(otherPid))}\n`,
      takenOver: false,
    },
  ];

  for (const [index, row] of rows.entries()) {
    it(
      `state lock - ${row.name}: ${row.takenOver ? 'taken over' : 'refused'}`,
      {
        skip: row.linuxOnly === true && !ON_LINUX,
      },
      async () => {
        const dir = join(root, `case-${index}`);
        await mkdir(dir, { recursive: true });
        const path = join(dir, STATE_LOCK_FILE);
        const written = row.lock();
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
              error.message.startsWith(`another relay (pid ${otherPid}) is running`),
          );
          assert.equal(readFileSync(path, 'utf8'), written, 'the lock is left as it was');
        }
      },
    );
  }
});

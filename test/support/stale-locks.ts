/**
 * The stale-lock cases of relay/protocol/process-lock.ts, as one table for each of its users (the
 * relay's state lock, the stream log's lock): a lock is taken over unless the process it names is
 * still the program that took it (same boot, same command line); a live holder keeps it.
 */
import { after, before } from 'node:test';
import { describeHolder } from '../../relay/protocol/process-lock.ts';
import { spawnChild } from './child-processes.ts';

export const ON_LINUX = process.platform === 'linux';

export interface StaleLockRow {
  readonly name: string;
  /** The lock file's contents; `bystander` is a live process that is neither relay nor agent. */
  readonly lock: (bystander: number) => string;
  readonly takenOver: boolean;
  /** Cases that need /proc to tell a pid's boot and command line. */
  readonly linuxOnly?: boolean;
}

const record = (holder: object): string => `${JSON.stringify(holder)}\n`;

export const STALE_LOCK_ROWS: readonly StaleLockRow[] = [
  { name: 'a bare pid 1 (pid reused after a reboot)', lock: () => '1\n', takenOver: true, linuxOnly: true },
  {
    name: 'a bare pid of a live process that is no relay',
    lock: (bystander) => `${bystander}\n`,
    takenOver: true,
    linuxOnly: true,
  },
  {
    name: 'pid 1 with another command line recorded',
    lock: () => record({ ...describeHolder(1), command: 'node\0bin/dmz-relay.js\0' }),
    takenOver: true,
    linuxOnly: true,
  },
  {
    name: 'a live holder recorded in an earlier boot',
    lock: (bystander) => record({ ...describeHolder(bystander), bootId: 'an-earlier-boot' }),
    takenOver: true,
    linuxOnly: true,
  },
  {
    // A restarted container's program is pid 1 again, with the command line it had before.
    name: 'this very pid, left by an earlier process that had it',
    lock: () => record(describeHolder(process.pid)),
    takenOver: true,
  },
  { name: 'a pid no process has', lock: () => '2147483646\n', takenOver: true },
  { name: 'a half-written lock', lock: () => '{"pid":', takenOver: true },
  {
    name: 'the live holder that took it (same boot, same command line)',
    lock: (bystander) => record(describeHolder(bystander)),
    takenOver: false,
  },
];

/** A live process that is no relay and no agent, for the suite around this call; its pid. */
export function useBystander(): () => number {
  let pid = 0;
  let stop = () => {};
  before(() => {
    const child = spawnChild(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    pid = child.pid ?? 0;
    stop = () => child.kill('SIGKILL');
  });
  after(() => stop());
  return () => pid;
}

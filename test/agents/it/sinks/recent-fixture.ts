/** A recent-values store directory for a test: sinks opened in it are closed before it is removed. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import {
  openRecentSink,
  type RecentSink,
  type RecentSinkOptions,
} from '../../../../agents/it/sinks/recent-sink.ts';

export interface RecentStoreDir {
  readonly dir: string;
  open(options?: Partial<RecentSinkOptions>): Promise<RecentSink>;
}

/**
 * node:test runs `after` hooks in the order they were added, and a closing sink writes its
 * snapshot, so the sinks close first.
 */
export async function recentStoreDir(t: TestContext): Promise<RecentStoreDir> {
  const parent = await mkdtemp(join(tmpdir(), 'dmz-recent-'));
  const opened: RecentSink[] = [];
  t.after(async () => {
    for (const sink of opened) await sink.close();
    await rm(parent, { recursive: true, force: true });
  });
  const dir = join(parent, 'sink');
  return {
    dir,
    async open(options = {}) {
      const sink = await openRecentSink({
        name: 'recent',
        dir,
        maxEntriesPerTopic: 100,
        maxAgeMs: 1e15,
        snapshotIntervalMs: 60_000,
        ...options,
      });
      opened.push(sink);
      return sink;
    },
  };
}

/**
 * A process that writes to a recent-values sink and dies by SIGKILL (recent-sink.test.ts): the
 * first `snapshotted` points reach a snapshot, then `after` more are written and the process is
 * killed in the same tick, before any snapshot could hold them. argv: dir snapshotted after.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openRecentSink } from '../../../../agents/it/sinks/recent-sink.ts';
import { SNAPSHOT_FILE } from '../../../../agents/it/sinks/recent-snapshot.ts';
import { CRASH_TOPIC } from './recent-crash-settings.ts';
import { pointEntry } from './sink-fixture.ts';

const [dir, snapshotted, after] = process.argv.slice(2) as [string, string, string];
const sink = await openRecentSink({
  name: 'recent',
  dir,
  maxEntriesPerTopic: 1000,
  maxAgeMs: 1e15,
  snapshotIntervalMs: 20,
});
const first = Number(snapshotted);
await sink.write(Array.from({ length: first }, (_, index) => pointEntry(CRASH_TOPIC, index + 1)));
for (;;) {
  const text = await readFile(join(dir, SNAPSHOT_FILE), 'utf8');
  if (text.includes(`"lastSeq":${first},`)) break;
  await new Promise((resolve) => setTimeout(resolve, 10));
}
void sink.write(
  Array.from({ length: Number(after) }, (_, index) => pointEntry(CRASH_TOPIC, first + index + 1)),
);
process.kill(process.pid, 'SIGKILL');

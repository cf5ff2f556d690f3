/**
 * The process the recent store's epoch crash test kills (recent-epochs.test.ts): for block 1, 2,
 * 3, ... it notes the OT agent's log epoch of that block (epochOfBlock), then writes the
 * block's EPOCH_BLOCK points, yielding to the snapshot timer (every 2 ms) between any two
 * calls, until it is killed. argv: dir.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { openRecentSink } from '../../../../agents/it/sinks/recent-sink.ts';
import { EPOCH_BLOCK, EPOCHS_TOPIC, epochOfBlock } from './recent-epochs-settings.ts';
import { pointEntries } from './sink-fixture.ts';

const [dir] = process.argv.slice(2) as [string];
const sink = await openRecentSink({
  name: 'recent',
  dir,
  maxEntriesPerTopic: 100,
  maxAgeMs: 1e15,
  snapshotIntervalMs: 2,
});
for (let block = 1; ; block++) {
  await sink.noteLogEpochs('press-7', [epochOfBlock(block)]);
  await nextTurn();
  await sink.write(pointEntries(EPOCHS_TOPIC, (block - 1) * EPOCH_BLOCK + 1, EPOCH_BLOCK));
  await nextTurn();
}

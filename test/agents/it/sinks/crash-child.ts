/**
 * The process the sink crash test kills: it writes to the sink in DIR from several concurrent
 * loops, forever, and reports each write on stdout as `<topic> <first> <last>` only once it has
 * resolved (durable). Writes to a pipe are synchronous on Linux, so a reported line is out of the
 * process before the next write starts. Run: node --import tsx crash-child.ts DIR CLOCK_START_MS
 */
import { openJsonLinesSink } from '../../../../agents/it/sinks/jsonl-sink.ts';
import type { SinkEntry } from '../../../../agents/it/sinks/sink.ts';
import {
  CRASH_CLOCK_JUMP_EVERY,
  CRASH_CLOCK_JUMP_MS,
  CRASH_CLOCK_STEP_MS,
  CRASH_GAP_EVERY,
  CRASH_GAP_REASON,
  CRASH_TOPICS,
  CRASH_WRITERS,
  MAX_CRASH_GAP,
  MAX_CRASH_WRITE_ENTRIES,
} from './crash-settings.ts';
import { gapEntry, pointEntries } from './sink-fixture.ts';

const [dir, clockStart] = process.argv.slice(2);
if (dir === undefined || clockStart === undefined)
  throw new Error('usage: crash-child.ts DIR CLOCK_START_MS');
let clock = Number(clockStart);
const now = (): number => {
  clock += CRASH_CLOCK_STEP_MS + (Math.random() < 1 / CRASH_CLOCK_JUMP_EVERY ? CRASH_CLOCK_JUMP_MS : 0);
  return clock;
};
const sink = await openJsonLinesSink({ dir, now });
// Writes are ordered by their calls, so each loop knows where its write starts.
const next = new Map(CRASH_TOPICS.map((topic) => [topic, sink.lastSeq(topic) + 1]));
process.stdout.write('ready\n');

async function writeForever(): Promise<never> {
  for (;;) {
    const topic = CRASH_TOPICS[Math.floor(Math.random() * CRASH_TOPICS.length)]!;
    const first = next.get(topic)!;
    let entries: SinkEntry[];
    let last: number;
    if (Math.random() < 1 / CRASH_GAP_EVERY) {
      last = first + Math.floor(Math.random() * MAX_CRASH_GAP);
      entries = [gapEntry(topic, first, last, CRASH_GAP_REASON)];
    } else {
      entries = pointEntries(topic, first, 1 + Math.floor(Math.random() * MAX_CRASH_WRITE_ENTRIES));
      last = first + entries.length - 1;
    }
    next.set(topic, last + 1);
    await sink.write(entries);
    process.stdout.write(`${topic} ${first} ${last}\n`);
  }
}

await Promise.all(Array.from({ length: CRASH_WRITERS }, writeForever));

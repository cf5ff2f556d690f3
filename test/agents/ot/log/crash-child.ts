/**
 * The process the crash test kills: it appends to the log in DIR from several concurrent loops,
 * forever, and reports each append on stdout as `<stream> <firstSeq> <lastSeq>` only once it has
 * resolved (durable). Writes to a pipe are synchronous on Linux, so a reported line is out of the
 * process before the next append starts. Run: node --import tsx crash-child.ts DIR
 */
import { openStreamLog } from '../../../../agents/ot/log/stream-log.ts';
import {
  CRASH_APPENDERS,
  CRASH_LOG_LIMITS,
  CRASH_STREAMS,
  MAX_CRASH_APPEND_RECORDS,
} from './crash-settings.ts';
import { recordsFor } from './log-fixture.ts';

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: crash-child.ts DIR');
const log = await openStreamLog({ dir, ...CRASH_LOG_LIMITS });
// Numbers are handed out in call order, so each loop knows the numbers its append will get.
const next = new Map(CRASH_STREAMS.map((stream) => [stream, log.lastSeq(stream) + 1]));
process.stdout.write('ready\n');

async function appendForever(): Promise<never> {
  for (;;) {
    const stream = CRASH_STREAMS[Math.floor(Math.random() * CRASH_STREAMS.length)]!;
    const count = 1 + Math.floor(Math.random() * MAX_CRASH_APPEND_RECORDS);
    const firstSeq = next.get(stream)!;
    next.set(stream, firstSeq + count);
    const result = await log.append(stream, recordsFor(stream, firstSeq, count));
    if (result.firstSeq !== firstSeq) throw new Error(`expected ${firstSeq}, got ${result.firstSeq}`);
    process.stdout.write(`${stream} ${result.firstSeq} ${result.lastSeq}\n`);
  }
}

await Promise.all(Array.from({ length: CRASH_APPENDERS }, appendForever));

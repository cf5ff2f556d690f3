/**
 * The process the reset crash test kills: it writes points 1..HELD of a topic, then a reset of it
 * to FROM and the OT agent's new log epochs, reporting `reset` once both are durable, then points
 * from FROM on, forever, reporting each `<last>` once durable. Run:
 * node --import tsx reset-crash-child.ts DIR HELD FROM
 */
import { openJsonLinesSink } from '../../../../agents/it/sinks/jsonl-sink.ts';
import { RESET_CRASH_EPOCHS, RESET_CRASH_REASON, RESET_CRASH_TOPIC } from './crash-settings.ts';
import { pointEntries } from './sink-fixture.ts';

const [dir, heldArgument, fromArgument] = process.argv.slice(2);
if (dir === undefined || heldArgument === undefined || fromArgument === undefined) {
  throw new Error('usage: reset-crash-child.ts DIR HELD FROM');
}
const held = Number(heldArgument);
const from = Number(fromArgument);
const sink = await openJsonLinesSink({ dir });
await sink.write(pointEntries(RESET_CRASH_TOPIC, 1, held));
// Not awaited one by one: the reset and the epochs go in one commit, as a consumer hands them over.
await Promise.all([
  sink.write([{ kind: 'reset', topic: RESET_CRASH_TOPIC, from, held, reason: RESET_CRASH_REASON }]),
  sink.noteLogEpochs('press-7', RESET_CRASH_EPOCHS),
]);
process.stdout.write('reset\n');
for (let next = from; ; next += 3) {
  await sink.write(pointEntries(RESET_CRASH_TOPIC, next, 3));
  process.stdout.write(`${next + 2}\n`);
}

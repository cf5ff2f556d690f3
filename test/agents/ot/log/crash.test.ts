import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { openStreamLog } from '../../../../agents/ot/log/stream-log.ts';
import { runUntilKilled } from '../../../support/reporting-child.ts';
import { CRASH_LOG_LIMITS, CRASH_STREAMS } from './crash-settings.ts';
import { makeTempDir, readAll, recordFor } from './log-fixture.ts';

const CHILD = join(import.meta.dirname, 'crash-child.ts');
const ROUNDS = 5;
/** The child is killed after a random number of reported appends in this range. */
const MIN_REPORTS = 20;
const MAX_REPORTS = 400;
/** Bound on one round (the child starts through tsx in about a second). */
const ROUND_TIMEOUT_MS = 30_000;

interface Reported {
  readonly stream: string;
  readonly firstSeq: number;
  readonly lastSeq: number;
}

/** Runs the child until it has reported `reports` appends, then kills it with SIGKILL. */
async function runAndKill(dir: string, reports: number): Promise<Reported[]> {
  const reported: Reported[] = [];
  await runUntilKilled(CHILD, {
    args: [dir],
    timeoutMs: ROUND_TIMEOUT_MS,
    onLine: (line) => {
      const [stream, firstSeq, lastSeq] = line.split(' ');
      reported.push({ stream: stream!, firstSeq: Number(firstSeq), lastSeq: Number(lastSeq) });
      return reported.length >= reports;
    },
    unfinished: () => `the child reported ${reported.length} of ${reports} appends`,
  });
  return reported;
}

describe('stream log - crash', () => {
  it('after kill -9 mid-append, every reported append is there, intact and in order, and no number is reused', async (t) => {
    const dir = await makeTempDir(t);
    const durable = new Map(CRASH_STREAMS.map((stream) => [stream, 0]));
    for (let round = 1; round <= ROUNDS; round++) {
      const reports = MIN_REPORTS + Math.floor(Math.random() * (MAX_REPORTS - MIN_REPORTS));
      const reported = await runAndKill(dir, reports);
      for (const { stream, lastSeq } of reported)
        durable.set(stream, Math.max(durable.get(stream)!, lastSeq));

      const log = await openStreamLog({ dir, ...CRASH_LOG_LIMITS });
      const context = `round ${round}, killed after ${reported.length} reports`;
      const { truncatedBytesAtOpen, segments } = log.stats();
      t.diagnostic(`${context}: ${segments} segments, ${truncatedBytesAtOpen} torn bytes cut at open`);
      for (const stream of CRASH_STREAMS) {
        const lastSeq = log.lastSeq(stream);
        assert.ok(
          lastSeq >= durable.get(stream)!,
          `${context}: ${stream} kept ${lastSeq} < ${durable.get(stream)}`,
        );
        const records = await readAll(log, stream, 1, 1000);
        assert.equal(records.length, lastSeq, `${context}: ${stream} has every number from 1 to ${lastSeq}`);
        records.forEach((record, index) => {
          assert.equal(record.seq, index + 1);
          assert.deepEqual(
            record.bytes,
            recordFor(stream, record.seq),
            `${context}: ${stream} #${record.seq} intact`,
          );
        });
        // More appends continue after the last durable number, never below a reported one.
        const next = await log.append(stream, [recordFor(stream, lastSeq + 1)]);
        assert.equal(next.firstSeq, lastSeq + 1);
        durable.set(stream, next.lastSeq);
      }
      await log.close();
    }
  });
});

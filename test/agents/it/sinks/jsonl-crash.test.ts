import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { openJsonLinesSink } from '../../../../agents/it/sinks/jsonl-sink.ts';
import { runUntilKilled } from '../../../support/reporting-child.ts';
import { CRASH_GAP_REASON, CRASH_ROUND_CLOCK_MS, CRASH_TOPICS } from './crash-settings.ts';
import { makeTempDir, pointFor, readAllLines, TEST_DAY_MS } from './sink-fixture.ts';

const CHILD = join(import.meta.dirname, 'crash-child.ts');
const ROUNDS = 5;
/** The child is killed after a random number of acknowledged writes in this range. */
const MIN_REPORTS = 20;
const MAX_REPORTS = 600;
/** Bound on one round (the child starts through tsx in about a second). */
const ROUND_TIMEOUT_MS = 15_000;

interface Acknowledged {
  readonly topic: string;
  readonly first: number;
  readonly last: number;
}

/**
 * Runs the child until it has acknowledged `reports` writes, then kills it with SIGKILL; `whileRunning`
 * is called once the child has the sink open.
 */
async function runAndKill(
  dir: string,
  clockStart: number,
  reports: number,
  whileRunning: (pid: number) => Promise<void>,
): Promise<Acknowledged[]> {
  const acknowledged: Acknowledged[] = [];
  await runUntilKilled(CHILD, {
    args: [dir, String(clockStart)],
    timeoutMs: ROUND_TIMEOUT_MS,
    onLine: (line) => {
      const [topic, first, last] = line.split(' ');
      acknowledged.push({ topic: topic!, first: Number(first), last: Number(last) });
      return acknowledged.length >= reports;
    },
    unfinished: () => `the child acknowledged ${acknowledged.length} of ${reports} writes`,
    whileReady: whileRunning,
  });
  return acknowledged;
}

describe('jsonl sink - crash', () => {
  it('after kill -9 mid-write, every acknowledged entry is on disk exactly once and the cursors are the last lines', async (t) => {
    const dir = await makeTempDir(t);
    const acknowledgedUpTo = new Map(CRASH_TOPICS.map((topic) => [topic, 0]));
    for (let round = 1; round <= ROUNDS; round++) {
      const reports = MIN_REPORTS + Math.floor(Math.random() * (MAX_REPORTS - MIN_REPORTS));
      const acknowledged = await runAndKill(
        dir,
        TEST_DAY_MS + round * CRASH_ROUND_CLOCK_MS,
        reports,
        async (pid) => {
          // A second process on a sink directory in use is refused, naming the holder.
          await assert.rejects(openJsonLinesSink({ dir }), (error: Error & { code?: string }) => {
            assert.equal(error.code, 'AGENT_ERR_SINK_LOCKED');
            assert.match(error.message, new RegExp(`pid ${pid}\\b`));
            return true;
          });
        },
      );
      for (const { topic, last } of acknowledged) {
        acknowledgedUpTo.set(topic, Math.max(acknowledgedUpTo.get(topic)!, last));
      }

      const sink = await openJsonLinesSink({ dir });
      const context = `round ${round}, killed after ${acknowledged.length} acknowledged writes`;
      const { scannedBytesAtOpen, truncatedBytesAtOpen } = sink.stats();
      t.diagnostic(
        `${context}: ${scannedBytesAtOpen} bytes scanned, ${truncatedBytesAtOpen} torn bytes cut at open`,
      );

      // Every line, in file order: each topic's lines cover 1, 2, 3, ... once each, no hole, no repeat.
      const lastLine = new Map<string, number>();
      for (const line of await readAllLines(dir)) {
        const topic = line.topic as string;
        const expected = (lastLine.get(topic) ?? 0) + 1;
        if ('gap' in line) {
          const gap = line.gap as { from: number; to: number; reason: string };
          assert.equal(gap.from, expected, `${context}: a gap of ${topic} follows its last line`);
          assert.equal(gap.reason, CRASH_GAP_REASON);
          lastLine.set(topic, gap.to);
        } else {
          assert.equal(line.seq, expected, `${context}: ${topic} #${expected} is next, once`);
          const point = pointFor(topic, expected);
          assert.deepEqual(line.value, point.value, `${context}: ${topic} #${expected} intact`);
          assert.equal(line.sourceTime, new Date(point.sourceTime).toISOString());
          lastLine.set(topic, expected);
        }
      }
      for (const topic of CRASH_TOPICS) {
        const held = sink.lastSeq(topic);
        assert.equal(held, lastLine.get(topic) ?? 0, `${context}: the cursor of ${topic} is its last line`);
        assert.ok(
          held >= acknowledgedUpTo.get(topic)!,
          `${context}: ${topic} holds ${held} < acknowledged ${acknowledgedUpTo.get(topic)}`,
        );
        // A replay from the cursor on goes on where the files end.
        assert.equal(
          await sink
            .write([{ kind: 'point', point: pointFor(topic, held + 1) }])
            .then(() => sink.lastSeq(topic)),
          held + 1,
        );
        acknowledgedUpTo.set(topic, held + 1);
      }
      await sink.close();
    }
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { batchBudget, frameRuns } from '../../../agents/ot/frame-batches.ts';
import { encodePointBatch } from '../../../agents/points/batch.ts';
import { decodeFrame, encodeFrame } from '../../../relay/protocol/codec.ts';
import { MAX_FRAME_BYTES, MAX_POINTS_PER_FRAME, MAX_TOPIC_BYTES } from '../../../relay/protocol/limits.ts';

/** A point's length prefix in a batch, as frameRuns counts it (three bytes at most). */
const PREFIX = 3;
/** The longest topic a frame carries, so the envelope is as large as it gets. */
const LONGEST_TOPIC = `press-7/${'a'.repeat(MAX_TOPIC_BYTES - 'press-7/'.length)}`;

/** Records of the given sizes; each one's first byte says which it is (mod 256). */
const recordsOf = (sizes: readonly number[]) =>
  sizes.map((size, index) => new Uint8Array(size).fill(index % 256, 0, 1));

function runsOf(records: readonly Uint8Array[], maxFrameBytes: number): Uint8Array[][] {
  return [...frameRuns(records, maxFrameBytes)].map((run) => [...run]);
}

const bytesOf = (run: readonly Uint8Array[]) =>
  run.reduce((sum, record) => sum + record.byteLength + PREFIX, 0);

/** The properties every cut must have: in order, all there, within both limits, each run full. */
function assertRuns(
  records: readonly Uint8Array[],
  runs: readonly Uint8Array[][],
  maxFrameBytes: number,
): void {
  const budget = batchBudget(maxFrameBytes);
  assert.deepEqual(runs.flat(), records, 'the runs are the records, in order, each once');
  let next = 0;
  for (const [index, run] of runs.entries()) {
    assert.ok(run.length >= 1, 'no empty run');
    assert.ok(run.length <= MAX_POINTS_PER_FRAME, `run ${index} holds ${run.length} points`);
    assert.ok(run.length === 1 || bytesOf(run) <= budget, `run ${index} holds ${bytesOf(run)} bytes`);
    next += run.length;
    const following = records[next];
    if (following !== undefined) {
      // Cut only where the next record would break a limit: no frame is sent half empty.
      const full =
        run.length === MAX_POINTS_PER_FRAME || bytesOf(run) + following.byteLength + PREFIX > budget;
      assert.ok(full, `run ${index} was cut with room for the next record`);
    }
  }
}

describe('agents/ot frame batches', () => {
  it('yields no run for no records', () => {
    assert.deepEqual(runsOf([], MAX_FRAME_BYTES), []);
  });

  it('cuts many small records at MAX_POINTS_PER_FRAME', () => {
    const records = recordsOf(Array.from({ length: 2 * MAX_POINTS_PER_FRAME + 7 }, () => 15));
    const runs = runsOf(records, MAX_FRAME_BYTES);
    assert.deepEqual(
      runs.map((run) => run.length),
      [MAX_POINTS_PER_FRAME, MAX_POINTS_PER_FRAME, 7],
    );
    assertRuns(records, runs, MAX_FRAME_BYTES);
  });

  it('cuts large records at the byte budget of the frame size the relay announced', () => {
    const maxFrameBytes = 64 * 1024;
    const records = recordsOf(Array.from({ length: 100 }, () => 5000));
    const runs = runsOf(records, maxFrameBytes);
    const perRun = Math.floor(batchBudget(maxFrameBytes) / (5000 + PREFIX));
    assert.deepEqual(
      runs.map((run) => run.length),
      [...Array.from({ length: Math.floor(100 / perRun) }, () => perRun), 100 % perRun].filter(Boolean),
    );
    assertRuns(records, runs, maxFrameBytes);
  });

  it('keeps order, covers every record and respects both limits for any sizes', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 1, max: 20_000 })), {
          maxLength: 600,
        }),
        fc.constantFrom(16 * 1024, 64 * 1024, MAX_FRAME_BYTES),
        (sizes, maxFrameBytes) => {
          const records = recordsOf(sizes);
          assertRuns(records, runsOf(records, maxFrameBytes), maxFrameBytes);
        },
      ),
      { numRuns: 200, seed: 6 },
    );
  });

  it('sends a record of exactly the budget alone, between the records around it', () => {
    const maxFrameBytes = 32 * 1024;
    const exact = batchBudget(maxFrameBytes) - PREFIX;
    const records = recordsOf([20, exact, 20, 30]);
    const runs = runsOf(records, maxFrameBytes);
    assert.deepEqual(
      runs.map((run) => run.map((record) => record.byteLength)),
      [[20], [exact], [20, 30]],
    );
    assertRuns(records, runs, maxFrameBytes);
    // And a run that fills the budget to the byte stays one run.
    const filling = recordsOf([exact - 20 - PREFIX, 20]);
    assert.deepEqual(
      runsOf(filling, maxFrameBytes).map((run) => run.length),
      [2],
    );
  });

  it('makes frames the codec accepts within the frame size, with the longest topic', () => {
    const maxFrameBytes = 32 * 1024;
    const records = recordsOf([40, batchBudget(maxFrameBytes) - PREFIX, 300, 300, 300]);
    let seq = 2 ** 50;
    for (const run of frameRuns(records, maxFrameBytes)) {
      const frame = encodeFrame({
        type: 'publish',
        topic: LONGEST_TOPIC,
        seq,
        count: run.length,
        points: encodePointBatch(run),
        session: 0xffff_ffff,
      });
      assert.ok(frame.byteLength <= maxFrameBytes, `${frame.byteLength} bytes`);
      assert.equal(decodeFrame(frame, 'toRelay', maxFrameBytes).type, 'publish');
      seq += run.length;
    }
  });
});

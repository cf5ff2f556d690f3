import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StreamOrder, type Admission, type DeliveredBatch } from '../../../agents/it/stream-order.ts';
import { decodePointBatch, encodePointBatch } from '../../../agents/points/batch.ts';
import { encodePoint } from '../../../agents/points/point.ts';
import { DmzError } from '../../../relay/protocol/errors.ts';
import {
  COUNT,
  EPOCH,
  gap,
  origin,
  points,
  readingFor,
  replayEnd,
  resets,
  TEMP,
} from '../../support/points.ts';

/**
 * An admission in a line: the entries (`temp:4` a point, `temp:gap 3-9` a gap, `temp:reset 1/9`
 * a reset to 1 of what was held up to 9), then `hole`, `origin` or `end more` / `end done` when
 * set. Checks that each point entry carries its own reading.
 */
function summarize(admission: Admission): string {
  const parts = admission.entries.map((entry) => {
    const name = (entry.kind === 'point' ? entry.point.topic : entry.topic).split('/').at(-1);
    if (entry.kind === 'gap') return `${name}:gap ${entry.from}-${entry.to}`;
    if (entry.kind === 'reset') return `${name}:reset ${entry.from}/${entry.held}`;
    assert.deepEqual(entry.point, {
      topic: entry.point.topic,
      seq: entry.point.seq,
      ...readingFor(entry.point.seq),
    });
    return `${name}:${entry.point.seq}`;
  });
  if (admission.hole) parts.push('hole');
  if (admission.origin !== undefined) parts.push(`origin ${admission.origin.join(',')}`);
  if (admission.replayEnd !== undefined) parts.push(admission.replayEnd.more ? 'end more' : 'end done');
  return parts.join(' ');
}

type Step = readonly [batch: DeliveredBatch, expected: string, room?: boolean, inRound?: boolean];
interface Case {
  readonly held?: Record<string, number>;
  readonly steps: readonly Step[];
  /** After the last step. */
  readonly lastSeq: Record<string, number>;
  readonly hasHoles: boolean;
}

const seqs = (first: number, last: number, topic = 'temp') =>
  Array.from({ length: last - first + 1 }, (_, index) => `${topic}:${first + index}`).join(' ');

const ORDERING: Record<string, Case> = {
  'batches in order are admitted whole': {
    steps: [
      [points(1, 3), seqs(1, 3)],
      [points(4, 2), seqs(4, 5)],
    ],
    lastSeq: { [TEMP]: 5 },
    hasHoles: false,
  },
  'a batch overlapping what is held is trimmed to what is new': {
    held: { [TEMP]: 3 },
    steps: [[points(2, 5), seqs(4, 6)]],
    lastSeq: { [TEMP]: 6 },
    hasHoles: false,
  },
  'a batch wholly held already is dropped, with no hole': {
    steps: [
      [points(1, 3), seqs(1, 3)],
      [points(1, 3), ''],
      [points(2, 1), ''],
    ],
    lastSeq: { [TEMP]: 3 },
    hasHoles: false,
  },
  'a batch beyond the next point admits nothing and leaves a hole until one fills past it': {
    steps: [
      [points(5, 2), 'hole'],
      [points(1, 4), seqs(1, 4)],
      [points(5, 1), 'temp:5'],
      [points(6, 2), seqs(6, 7)],
    ],
    lastSeq: { [TEMP]: 7 },
    hasHoles: false,
  },
  'a hole stays while what arrives stops short of its far end': {
    steps: [
      [points(5, 2), 'hole'],
      [points(1, 5), seqs(1, 5)],
    ],
    lastSeq: { [TEMP]: 5 },
    hasHoles: true,
  },
  'a gap record advances the cursor and is an entry from lastSeq + 1': {
    held: { [TEMP]: 2 },
    steps: [
      [gap(3, 9), 'temp:gap 3-9'],
      [points(10, 2), seqs(10, 11)],
    ],
    lastSeq: { [TEMP]: 11 },
    hasHoles: false,
  },
  'a gap overlapping what is held starts after it': {
    held: { [TEMP]: 5 },
    steps: [[gap(3, 9), 'temp:gap 6-9']],
    lastSeq: { [TEMP]: 9 },
    hasHoles: false,
  },
  'a gap wholly behind what is held is ignored': {
    held: { [TEMP]: 10 },
    steps: [[gap(3, 8), '']],
    lastSeq: { [TEMP]: 10 },
    hasHoles: false,
  },
  'a gap beyond the next point is a hole, filled once a round reaches past its end': {
    held: { [TEMP]: 2 },
    steps: [
      [gap(5, 9), 'hole'],
      [gap(3, 9), 'temp:gap 3-9'],
    ],
    lastSeq: { [TEMP]: 9 },
    hasHoles: false,
  },
  'a replay end is recognised on its marker topic and on any topic or seq': {
    held: { [TEMP]: 4 },
    steps: [
      [replayEnd(true), 'end more'],
      [replayEnd(false, TEMP, 42), 'end done'],
      [replayEnd(true, COUNT, 1), 'end more'],
    ],
    lastSeq: { [TEMP]: 4, [COUNT]: 0, 'press-7/_replay': 0 },
    hasHoles: false,
  },
  'with no room nothing is admitted and the batch is owed': {
    steps: [
      [points(1, 3), 'hole', false],
      [points(1, 2), seqs(1, 2)],
      [points(3, 1), 'temp:3'],
    ],
    lastSeq: { [TEMP]: 3 },
    hasHoles: false,
  },
  'with no room a batch already held owes nothing and is no hole': {
    held: { [TEMP]: 5 },
    steps: [
      [points(1, 3), '', false],
      [gap(2, 4), '', false],
    ],
    lastSeq: { [TEMP]: 5 },
    hasHoles: false,
  },
  'an origin names the log epochs': {
    steps: [[origin(['5c1e0f8a9b2d4e67', EPOCH]), `origin 5c1e0f8a9b2d4e67,${EPOCH}`]],
    lastSeq: {},
    hasHoles: false,
  },
  'a reset in a round takes the stream back: new points with old numbers are admitted': {
    held: { [TEMP]: 9, [COUNT]: 4 },
    steps: [
      [points(3, 2), ''],
      [resets(new Map([[TEMP, 1]])), `temp:reset 1/9 origin ${EPOCH}`],
      [points(1, 3), seqs(1, 3)],
    ],
    lastSeq: { [TEMP]: 3, [COUNT]: 4 },
    hasHoles: false,
  },
  'a reset to a later point keeps what comes before it': {
    held: { [TEMP]: 9 },
    steps: [
      [resets(new Map([[TEMP, 5]])), `temp:reset 5/9 origin ${EPOCH}`],
      [points(4, 3), seqs(5, 6)],
    ],
    lastSeq: { [TEMP]: 6 },
    hasHoles: false,
  },
  'a reset outside a round is not believed': {
    held: { [TEMP]: 9 },
    steps: [
      [resets(new Map([[TEMP, 1]])), '', true, false],
      [points(1, 3), ''],
    ],
    lastSeq: { [TEMP]: 9 },
    hasHoles: false,
  },
  'a reset never moves a stream forward, nor names one never held': {
    held: { [TEMP]: 3 },
    steps: [
      [
        resets(
          new Map([
            [TEMP, 5],
            [COUNT, 1],
          ]),
        ),
        `origin ${EPOCH}`,
      ],
    ],
    lastSeq: { [TEMP]: 3, [COUNT]: 0 },
    hasHoles: false,
  },
  'a reset is taken with no room (the sink behind), and forgets the hole of its stream': {
    held: { [TEMP]: 9 },
    steps: [
      [points(12, 1), 'hole'],
      [resets(new Map([[TEMP, 1]])), `temp:reset 1/9 origin ${EPOCH}`, false],
    ],
    lastSeq: { [TEMP]: 0 },
    hasHoles: false,
  },
  'streams are ordered each on their own': {
    steps: [
      [points(1, 2, COUNT), seqs(1, 2, 'count')],
      [points(3, 1), 'hole'],
      [points(3, 1, COUNT), 'count:3'],
      [points(1, 2), seqs(1, 2)],
    ],
    lastSeq: { [TEMP]: 2, [COUNT]: 3 },
    hasHoles: true,
  },
};

describe('agents/it stream order', () => {
  for (const [name, { held = {}, steps, lastSeq, hasHoles }] of Object.entries(ORDERING)) {
    it(name, () => {
      const order = new StreamOrder(new Map(Object.entries(held)));
      steps.forEach(([batch, expected, room = true, inRound = true], index) => {
        assert.equal(summarize(order.admit(batch, room, inRound)), expected, `step ${index + 1}`);
      });
      for (const [topic, seq] of Object.entries(lastSeq)) assert.equal(order.lastSeq(topic), seq, topic);
      assert.equal(order.hasHoles(), hasHoles);
    });
  }

  it('reset goes back to the sink cursors: holes forgotten, admitted points admitted again', () => {
    const order = new StreamOrder(new Map());
    assert.equal(summarize(order.admit(points(1, 5))), seqs(1, 5));
    assert.equal(summarize(order.admit(points(9, 1, COUNT))), 'hole');
    order.reset(new Map([[TEMP, 2]]));
    assert.equal(order.hasHoles(), false);
    assert.deepEqual(order.positions(), new Map([[TEMP, 2]]));
    assert.equal(summarize(order.admit(points(1, 5))), seqs(3, 5));
    assert.equal(summarize(order.admit(points(1, 1, COUNT))), 'count:1');
  });

  it('reports positions per topic for the resume cursor', () => {
    const order = new StreamOrder(new Map([[COUNT, 7]]));
    order.admit(points(1, 3));
    assert.deepEqual(
      order.positions(),
      new Map([
        [COUNT, 7],
        [TEMP, 3],
      ]),
    );
  });

  const MALFORMED: [string, DeliveredBatch, string][] = [
    ['a count the batch does not hold', { ...points(1, 2), count: 3 }, 'AGENT_ERR_POINT_BATCH'],
    [
      'a record that is not a point',
      { ...points(1, 1), points: encodePointBatch([Uint8Array.of(0xc0)]) },
      'AGENT_ERR_POINT_INVALID',
    ],
    [
      'a batch of resets holding a point',
      {
        ...points(1, 1),
        points: encodePointBatch([
          ...decodePointBatch(resets(new Map()).points, 1),
          encodePoint(readingFor(1)),
        ]),
        count: 2,
      },
      'AGENT_ERR_STREAM_RECORD',
    ],
    [
      'a malformed gap',
      { ...points(1, 1), points: encodePointBatch([Uint8Array.of(0x07, 0, 0)]) },
      'AGENT_ERR_STREAM_RECORD',
    ],
  ];
  for (const [name, batch, code] of MALFORMED) {
    it(`throws ${code} for ${name} and admits nothing`, () => {
      const order = new StreamOrder(new Map());
      assert.throws(
        () => order.admit(batch),
        (error: unknown) => error instanceof DmzError && error.code === code,
      );
      assert.equal(order.lastSeq(TEMP), 0);
      assert.equal(order.hasHoles(), false);
      assert.equal(summarize(order.admit(points(1, 2))), seqs(1, 2));
    });
  }
});

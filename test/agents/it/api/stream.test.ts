/**
 * The live stream (server-sent events) against a real plant: events carry their cursor as id; a
 * stream resumed after an id (Last-Event-ID, or since=) goes on with exactly the next entries, so
 * two sessions together hold every point once, in order; a cursor older than what the store still
 * holds says so (a `truncated` event); the number of streams is bounded.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertRun } from '../../../support/agent-plant.ts';
import { waitFor } from '../../../support/wait.ts';
import { MAX_STREAMS } from '../../../../agents/it/api/api-config.ts';
import {
  createApiPlant,
  openStream,
  request,
  SPEED,
  TEMP,
  waitForValues,
  type ApiPlant,
  type OpenStream,
} from './api-plant.ts';

/** Entries a topic keeps here: small, so that an old cursor finds its entries evicted. */
const HISTORY = 20;

describe('agents/it/api - the live stream, resumed from a cursor', () => {
  let plant: ApiPlant;
  let base: string;
  before(async () => {
    plant = await createApiPlant();
    const agent = await plant.startIt({}, { sink: { historyPerTopic: HISTORY } });
    base = agent.api!.url;
    await waitForValues(base, [TEMP, SPEED]);
  });
  after(() => plant.close());

  const seqs = (stream: OpenStream, topic: string) =>
    stream.events
      .filter((event) => event.event === 'point' && event.data.topic === topic)
      .map((event) => event.data.seq as number);

  it('resumes after Last-Event-ID with no point lost and none twice', async () => {
    const filter = encodeURIComponent(TEMP);
    const first = await openStream(`${base}api/v1/stream?filter=${filter}`);
    assert.equal(first.status, 200);
    await waitFor(() => seqs(first, TEMP).length >= 5, 'five live points', 30_000);
    first.close();
    const hello = first.events[0]!;
    assert.equal(hello.event, 'hello');
    assert.equal(hello.id, hello.data.cursor);
    // Resume from the third point: what a browser whose connection broke there would send.
    const points = first.events.filter((event) => event.event === 'point');
    const resumeAt = points[2]!;
    const seen = points.slice(0, 3).map((event) => event.data.seq as number);
    const second = await openStream(`${base}api/v1/stream?filter=${filter}`, {
      'last-event-id': resumeAt.id,
    });
    await waitFor(() => seqs(second, TEMP).length >= 10, 'ten more points', 30_000);
    second.close();
    const resumed = seqs(second, TEMP);
    assertRun(
      [...seen, ...resumed],
      seen[0]!,
      seen[0]! + seen.length + resumed.length - 1,
      'the two sessions',
    );
    assert.ok(
      second.events.every((event) => event.event === 'point' && event.data.topic === TEMP),
      'the filter holds',
    );
    // Ids only grow: a client can keep the last one it saw as its cursor.
    const ids = second.events.map((event) => Number(event.id.split('-')[1]));
    assert.deepEqual(
      ids,
      [...ids].sort((a, b) => a - b),
    );
  });

  it('resumes from since= as from Last-Event-ID', async () => {
    const current = (await request(`${base}api/v1/points?filter=${encodeURIComponent(SPEED)}`)).json<{
      cursor: string;
      points: { seq: number }[];
    }>();
    const stream = await openStream(
      `${base}api/v1/stream?filter=${encodeURIComponent(SPEED)}&since=${current.cursor}`,
    );
    await waitFor(() => seqs(stream, SPEED).length >= 3, 'three points after the cursor', 30_000);
    stream.close();
    const after = seqs(stream, SPEED);
    // The cursor of the current values is where the value shown stands: the stream goes on right after it.
    assert.equal(after[0], current.points[0]!.seq + 1);
    const first = after[0] ?? 0;
    assertRun(after, first, first + after.length - 1, 'after since=');
  });

  it('says so when the entries after a cursor were evicted, then goes on from what is held', async () => {
    const filter = encodeURIComponent(TEMP);
    const early = await openStream(`${base}api/v1/stream?filter=${filter}`);
    await waitFor(() => early.events.length >= 1, 'hello', 30_000);
    early.close();
    const cursor = early.events[0]!.id;
    // Wait until more than the history's worth of entries came after that cursor.
    await waitFor(
      async () => {
        const page = (await request(`${base}api/v1/history?filter=${filter}&since=${cursor}`)).json<{
          truncated: boolean;
        }>();
        return page.truncated;
      },
      'the cursor to fall out of the history',
      60_000,
      100,
    );
    const late = await openStream(`${base}api/v1/stream?filter=${filter}&since=${cursor}`);
    await waitFor(() => seqs(late, TEMP).length >= HISTORY, 'what the store holds', 30_000);
    late.close();
    assert.equal(late.events[0]!.event, 'truncated');
  });

  it(`serves at most ${MAX_STREAMS} streams at once: AGENT_ERR_API_TOO_MANY_STREAMS`, async () => {
    const open: OpenStream[] = [];
    try {
      for (let index = 0; index < MAX_STREAMS; index++) {
        const stream = await openStream(`${base}api/v1/stream`);
        assert.equal(stream.status, 200);
        open.push(stream);
      }
      const refused = await request(`${base}api/v1/stream`);
      assert.equal(refused.status, 503);
      assert.equal(refused.json().code, 'AGENT_ERR_API_TOO_MANY_STREAMS');
    } finally {
      for (const stream of open) stream.close();
    }
    // Closed streams are given back.
    await waitFor(
      async () => {
        const again = await openStream(`${base}api/v1/stream`);
        again.close();
        return again.status === 200;
      },
      'a stream served again',
      30_000,
      100,
    );
  });
});

import assert from 'node:assert/strict';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { openJsonLinesSink } from '../../../../agents/it/sinks/jsonl-sink.ts';
import { encodeLine } from '../../../../agents/it/sinks/jsonl-format.ts';
import { MAX_PENDING_BYTES } from '../../../../agents/it/sinks/jsonl-limits.ts';
import type { SinkEntry } from '../../../../agents/it/sinks/sink.ts';
import {
  dataFiles,
  gapEntry,
  makeTempDir,
  pointEntries,
  pointEntry,
  pointFor,
  readAllLines,
  rejectionCode,
  TEST_DAY_MS,
} from './sink-fixture.ts';

const now = (): number => TEST_DAY_MS;

describe('jsonl sink - round trip', () => {
  it('writes points and gaps as the specified lines, and a reopen has the same cursors', async (t) => {
    const dir = await makeTempDir(t);
    const sink = await openJsonLinesSink({ dir, name: 'archive', now });
    assert.equal(sink.name, 'archive');
    await sink.write([
      {
        kind: 'point',
        point: { topic: 'press-7/temp', seq: 1, value: 21.5, quality: 'good', sourceTime: TEST_DAY_MS },
      },
      {
        kind: 'point',
        point: {
          topic: 'press-7/temp',
          seq: 2,
          value: false,
          quality: 'bad',
          reason: 'timeout',
          sourceTime: TEST_DAY_MS + 1,
        },
      },
      {
        kind: 'point',
        point: { topic: 'press-7/wave', seq: 1, value: [1.5, -2, 0], quality: 'uncertain', sourceTime: 0 },
      },
      {
        kind: 'point',
        point: { topic: 'press-7/recipe', seq: 1, value: 'PVC "7"\n', quality: 'good', sourceTime: 1 },
      },
      gapEntry('press-7/temp', 3, 99),
      {
        kind: 'point',
        point: { topic: 'press-7/temp', seq: 100, value: 12, quality: 'good', sourceTime: TEST_DAY_MS },
      },
    ]);
    assert.deepEqual(
      [...sink.cursors()],
      [
        ['press-7/temp', 100],
        ['press-7/wave', 1],
        ['press-7/recipe', 1],
      ],
    );
    await sink.close();

    assert.deepEqual(await dataFiles(dir), ['points-2026-12-01.jsonl']);
    const text = await readFile(join(dir, 'points-2026-12-01.jsonl'), 'utf8');
    assert.equal(
      text,
      [
        '{"topic":"press-7/temp","seq":1,"value":21.5,"quality":"good","sourceTime":"2026-12-01T11:00:00.000Z"}',
        '{"topic":"press-7/temp","seq":2,"value":false,"quality":"bad","reason":"timeout","sourceTime":"2026-12-01T11:00:00.001Z"}',
        '{"topic":"press-7/wave","seq":1,"value":[1.5,-2,0],"quality":"uncertain","sourceTime":"1970-01-01T00:00:00.000Z"}',
        '{"topic":"press-7/recipe","seq":1,"value":"PVC \\"7\\"\\n","quality":"good","sourceTime":"1970-01-01T00:00:00.001Z"}',
        '{"topic":"press-7/temp","gap":{"from":3,"to":99,"reason":"retention"}}',
        '{"topic":"press-7/temp","seq":100,"value":12,"quality":"good","sourceTime":"2026-12-01T11:00:00.000Z"}',
        '',
      ].join('\n'),
    );
    assert.equal((await readAllLines(dir)).length, 6, 'every line parses with JSON.parse');

    const reopened = await openJsonLinesSink({ dir, now });
    assert.equal(reopened.name, 'jsonl');
    assert.equal(reopened.lastSeq('press-7/temp'), 100);
    assert.equal(reopened.lastSeq('press-7/wave'), 1);
    assert.equal(reopened.lastSeq('press-7/never'), 0);
    assert.equal(reopened.stats().scannedBytesAtOpen, 0, 'a clean close leaves nothing to scan');
    await reopened.write([pointEntry('press-7/wave', 2)]);
    await reopened.close();
    assert.equal((await readAllLines(dir)).length, 7);
  });

  it('keeps the directory 0700 and its files 0600, and refuses a directory open to others', async (t) => {
    const dir = await makeTempDir(t);
    const sink = await openJsonLinesSink({ dir, now });
    await sink.write(pointEntries('press-7/a', 1, 3));
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
    for (const name of ['points-2026-12-01.jsonl', 'sink.lock']) {
      assert.equal((await stat(join(dir, name))).mode & 0o777, 0o600, name);
    }
    await sink.close();
    assert.equal((await stat(join(dir, 'sink.checkpoint'))).mode & 0o777, 0o600);

    const open = join(dir, '..', 'open');
    await mkdir(open, { mode: 0o755 });
    assert.equal(await rejectionCode(openJsonLinesSink({ dir: open })), 'AGENT_ERR_SINK_PERMISSIONS');
  });

  it('refuses options it does not know, listing each', async (t) => {
    const dir = await makeTempDir(t);
    const bad = { dir, name: 'no spaces', clock: now } as unknown as Parameters<typeof openJsonLinesSink>[0];
    await assert.rejects(openJsonLinesSink(bad), (error: Error & { issues?: { path: string }[] }) => {
      assert.deepEqual(
        error.issues?.map((issue) => issue.path),
        ['/clock', '/name'],
      );
      return true;
    });
  });
});

describe('jsonl sink - order', () => {
  const A = 'press-7/a';
  const B = 'press-7/b';
  // A holds 1..3, B nothing, when each call is made.
  const refused: { name: string; entries: SinkEntry[] }[] = [
    { name: 'a sequence repeated', entries: [pointEntry(A, 3)] },
    { name: 'a sequence skipped', entries: [pointEntry(A, 5)] },
    { name: 'a repeat inside the call', entries: [pointEntry(A, 4), pointEntry(A, 4)] },
    { name: "a new topic's first point is not 1", entries: [pointEntry(B, 2)] },
    { name: 'a good prefix, then a skip', entries: [pointEntry(A, 4), pointEntry(B, 1), pointEntry(A, 6)] },
    { name: 'a gap not starting at lastSeq + 1', entries: [gapEntry(A, 5, 10)] },
    { name: 'a gap overlapping what is held', entries: [gapEntry(A, 3, 10)] },
    { name: 'a gap ending before it starts', entries: [gapEntry(A, 4, 3)] },
    { name: 'a point inside the gap before it', entries: [gapEntry(A, 4, 10), pointEntry(A, 10)] },
    {
      name: 'a sequence that is not a number',
      entries: [{ kind: 'point', point: { ...pointFor(A, 4), seq: '4' } } as never],
    },
  ];

  it('refuses every out-of-order call with AGENT_ERR_SINK_ORDER and writes nothing of it', async (t) => {
    const dir = await makeTempDir(t);
    const sink = await openJsonLinesSink({ dir, now });
    await sink.write(pointEntries(A, 1, 3));
    const file = join(dir, 'points-2026-12-01.jsonl');
    const before = await readFile(file);
    for (const { name, entries } of refused) {
      assert.equal(await rejectionCode(sink.write(entries)), 'AGENT_ERR_SINK_ORDER', name);
      assert.deepEqual([...sink.cursors()], [[A, 3]], `${name}: cursors unchanged`);
    }
    assert.equal(sink.stats().writes, 1);
    assert.deepEqual(await readFile(file), before, 'not a byte written');
    // Still accepting what does follow.
    await sink.write([pointEntry(A, 4), gapEntry(A, 5, 9), pointEntry(A, 10), pointEntry(B, 1)]);
    assert.deepEqual(
      [...sink.cursors()],
      [
        [A, 10],
        [B, 1],
      ],
    );
    await sink.close();
  });

  it('refuses malformed entries before anything is written', async (t) => {
    const dir = await makeTempDir(t);
    const sink = await openJsonLinesSink({ dir, now });
    const point = pointFor(A, 1);
    const cases: { name: string; entries: unknown; code: string }[] = [
      { name: 'not an array', entries: pointEntry(A, 1), code: 'AGENT_ERR_SINK_ENTRY' },
      { name: 'an unknown kind', entries: [{ kind: 'note', topic: A }], code: 'AGENT_ERR_SINK_ENTRY' },
      {
        name: 'a wildcard topic',
        entries: [{ kind: 'point', point: pointFor('press-7/+', 1) }],
        code: 'AGENT_ERR_SINK_ENTRY',
      },
      {
        name: 'a NaN value',
        entries: [{ kind: 'point', point: { ...point, value: Number.NaN } }],
        code: 'AGENT_ERR_POINT_INVALID',
      },
      {
        name: 'an unknown quality',
        entries: [{ kind: 'point', point: { ...point, quality: 'fine' } }],
        code: 'AGENT_ERR_POINT_INVALID',
      },
      { name: 'a gap without a reason', entries: [gapEntry(A, 1, 5, '')], code: 'AGENT_ERR_SINK_ENTRY' },
    ];
    for (const { name, entries, code } of cases) {
      assert.equal(await rejectionCode(sink.write(entries as SinkEntry[])), code, name);
    }
    assert.equal(sink.cursors().size, 0);
    assert.deepEqual(await dataFiles(dir), []);
    await sink.close();
  });
});

describe('jsonl sink - group commit', () => {
  const topic = (index: number): string => `press-7/line${index % 50}/temp`;

  it('a lone write is committed by itself, at once', async (t) => {
    const sink = await openJsonLinesSink({ dir: await makeTempDir(t), now });
    await sink.write([pointEntry('press-7/alone', 1)]);
    assert.equal(sink.stats().dataSyncs, 1);
    await sink.close();
  });

  it('many concurrent writes share far fewer fdatasyncs', async (t) => {
    const sink = await openJsonLinesSink({ dir: await makeTempDir(t), now });
    const writes = 1000;
    await Promise.all(
      Array.from({ length: writes }, (_, call) =>
        sink.write([pointEntry(topic(call), Math.floor(call / 50) + 1)]),
      ),
    );
    const { dataSyncs } = sink.stats();
    t.diagnostic(`${writes} concurrent writes: ${dataSyncs} fdatasyncs`);
    assert.ok(dataSyncs <= writes / 100, `${writes} writes took ${dataSyncs} fdatasyncs`);
    for (let index = 0; index < 50; index++) assert.equal(sink.lastSeq(topic(index)), writes / 50);
    await sink.close();
  });

  it('writers that await and write again join the commit behind the one in flight', async (t) => {
    const dir = await makeTempDir(t);
    const sink = await openJsonLinesSink({ dir, now });
    const writers = 20;
    const rounds = 25;
    await Promise.all(
      Array.from({ length: writers }, async (_, writer) => {
        for (let round = 1; round <= rounds; round++) await sink.write([pointEntry(topic(writer), round)]);
      }),
    );
    const { writes, dataSyncs } = sink.stats();
    t.diagnostic(`${writers} writers x ${rounds} awaited writes: ${writes} writes, ${dataSyncs} fdatasyncs`);
    assert.equal(writes, writers * rounds);
    assert.ok(dataSyncs <= writes / 5, `${writes} writes took ${dataSyncs} fdatasyncs`);
    await sink.close();
    assert.equal((await readAllLines(dir)).length, writes);
  });

  it('refuses with AGENT_ERR_SINK_BUSY once MAX_PENDING_BYTES wait, and accepts again once drained', async (t) => {
    const sink = await openJsonLinesSink({ dir: await makeTempDir(t), now });
    const long = 'x'.repeat(200);
    const batch = (index: number): SinkEntry[] =>
      Array.from({ length: 1000 }, (_, offset) => ({
        kind: 'point',
        point: {
          topic: `press-7/busy/t${index}`,
          seq: offset + 1,
          value: long,
          quality: 'good',
          sourceTime: 0,
        },
      }));
    const lineBytes = batch(0).reduce((bytes, entry) => bytes + Buffer.byteLength(encodeLine(entry)), 0);
    const calls = Math.ceil((2 * MAX_PENDING_BYTES) / lineBytes);
    // Made without awaiting: nothing commits until the loop yields.
    const outcomes = await Promise.all(
      Array.from({ length: calls }, (_, index) => rejectionCode(sink.write(batch(index)))),
    );
    const accepted = outcomes.filter((outcome) => outcome === 'resolved').length;
    assert.ok(accepted > 0 && accepted < calls, `${accepted} of ${calls} accepted`);
    assert.deepEqual(
      new Set(outcomes.slice(accepted)),
      new Set(['AGENT_ERR_SINK_BUSY']),
      'refused from the first that did not fit',
    );
    assert.equal(sink.lastSeq(`press-7/busy/t${accepted - 1}`), 1000);
    assert.equal(sink.lastSeq(`press-7/busy/t${accepted}`), 0, 'a refused write holds nothing');
    await sink.write(batch(accepted));
    assert.equal(sink.lastSeq(`press-7/busy/t${accepted}`), 1000);
    await sink.close();
  });
});

describe('jsonl sink - lifecycle', () => {
  it('refuses a second open of the same directory while the first holds it', async (t) => {
    const dir = await makeTempDir(t);
    const first = await openJsonLinesSink({ dir, now });
    await assert.rejects(openJsonLinesSink({ dir, now }), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'AGENT_ERR_SINK_LOCKED');
      assert.match(error.message, new RegExp(`pid ${process.pid}`));
      return true;
    });
    await first.close();
    const second = await openJsonLinesSink({ dir, now });
    await second.close();
  });

  it('waits for writes in flight at close, then refuses more with AGENT_ERR_SINK_CLOSED', async (t) => {
    const dir = await makeTempDir(t);
    const sink = await openJsonLinesSink({ dir, now });
    const inFlight = sink.write(pointEntries('press-7/a', 1, 10));
    const closed = sink.close();
    assert.equal(await rejectionCode(sink.write([pointEntry('press-7/a', 11)])), 'AGENT_ERR_SINK_CLOSED');
    await inFlight;
    await closed;
    await sink.close();
    assert.equal(sink.lastSeq('press-7/a'), 10);
    assert.equal((await readAllLines(dir)).length, 10);
  });
});

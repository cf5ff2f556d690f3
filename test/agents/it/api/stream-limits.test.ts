/**
 * The live stream's bounds, against a real store and a real HTTP connection (no plant: the store
 * is filled directly): a resume that missed more than one stream queues is served in parts, each
 * ending where the next reconnect goes on, so together they hold every entry once; a client that
 * stops reading is cut once its queue is full, and its slot given back.
 */
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type Server, type ServerResponse } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { MAX_QUEUED_ENTRIES, streamEntries } from '../../../../agents/it/api/event-stream.ts';
import { openRecentSink, type RecentSink } from '../../../../agents/it/sinks/recent-sink.ts';
import { waitFor } from '../../../support/wait.ts';
import { pointEntries, TEST_DAY_MS } from '../sinks/sink-fixture.ts';

const PER_TOPIC = 10_000;

async function storeWith(t: TestContext, topics: number): Promise<RecentSink> {
  const parent = await mkdtemp(join(tmpdir(), 'dmz-stream-'));
  const store = await openRecentSink({
    name: 'recent',
    dir: join(parent, 'sink'),
    maxEntriesPerTopic: PER_TOPIC,
    maxAgeMs: 86_400_000,
    snapshotIntervalMs: 3_600_000,
    now: () => TEST_DAY_MS,
  });
  t.after(async () => {
    await store.close();
    await rm(parent, { recursive: true, force: true });
  });
  for (let topic = 0; topic < topics; topic++) {
    await store.write(pointEntries(`press-7/plc/t${topic}`, 1, PER_TOPIC));
  }
  return store;
}

/** A server whose every request is one stream of `store` after `afterId`; `responses` are the streams. */
async function streamServer(
  t: TestContext,
  store: RecentSink,
  afterId: () => number | undefined,
): Promise<{ port: number; responses: ServerResponse[]; finished: Promise<void>[] }> {
  const responses: ServerResponse[] = [];
  const finished: Promise<void>[] = [];
  const server: Server = createServer((_request, response) => {
    responses.push(response);
    finished.push(streamEntries(response, store, { filter: '#', afterId: afterId() }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  t.after(() => server.closeAllConnections());
  const address = server.address();
  return { port: typeof address === 'object' && address !== null ? address.port : 0, responses, finished };
}

/** The ids of the point events one stream sends, until it ends or `enough` says stop. */
function readIds(
  port: number,
  enough: (ids: number[]) => boolean,
): Promise<{ ids: number[]; ended: boolean }> {
  return new Promise((resolve, reject) => {
    const ids: number[] = [];
    const outgoing = httpRequest({ host: '127.0.0.1', port, path: '/' }, (response) => {
      let buffer = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        buffer += chunk;
        let newline: number;
        while ((newline = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + 1);
          if (line.startsWith('id: ')) ids.push(Number(line.slice(4).split('-')[1]));
        }
        if (enough(ids)) {
          outgoing.destroy();
          resolve({ ids, ended: false });
        }
      });
      response.on('end', () => resolve({ ids, ended: true }));
      response.on('error', () => undefined);
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

describe('agents/it/api - the live stream, bounded', () => {
  it(
    `serves a resume that missed more than ${MAX_QUEUED_ENTRIES} entries in parts, every entry once`,
    { timeout: 60_000 },
    async (t) => {
      const store = await storeWith(t, 6);
      const total = store.latestId;
      assert.ok(total > MAX_QUEUED_ENTRIES);
      const warnings: string[] = [];
      const onWarning = (warning: Error) => warnings.push(warning.name);
      process.on('warning', onWarning);
      t.after(() => process.off('warning', onWarning));
      let resumeAfter = 0;
      const { port } = await streamServer(t, store, () => resumeAfter);
      const first = await waitFor(() => readIds(port, () => false), 'the first part to end', 60_000);
      assert.equal(first.ended, true, 'the first part ends, so the client reconnects');
      assert.equal(first.ids.length, MAX_QUEUED_ENTRIES);
      resumeAfter = first.ids.at(-1) ?? 0;
      const second = await readIds(port, (ids) => ids.length >= total - MAX_QUEUED_ENTRIES);
      assert.deepEqual(
        [...first.ids, ...second.ids],
        Array.from({ length: total }, (_, index) => index + 1),
      );
      // Waiting for a slow client many times must not pile up listeners on its response.
      assert.deepEqual(
        warnings.filter((name) => name === 'MaxListenersExceededWarning'),
        [],
      );
    },
  );

  it(
    'cuts a client that stops reading once its queue is full, and gives its slot back',
    { timeout: 60_000 },
    async (t) => {
      const store = await storeWith(t, 0);
      const { port, responses, finished } = await streamServer(t, store, () => undefined);
      const socket = connect(port, '127.0.0.1');
      t.after(() => socket.destroy());
      socket.write('GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n');
      // It reads the answer's first bytes, then nothing more.
      await new Promise((resolve) => socket.once('data', resolve));
      socket.pause();
      const response = await waitFor(() => responses[0], 'the stream', 10_000);
      const topic = 'press-7/plc/fast';
      let seq = 1;
      // Entries until the stream waits for the client (its socket's buffers are full).
      await waitFor(
        async () => {
          await store.write(pointEntries(topic, seq, 1_000));
          seq += 1_000;
          await new Promise((resolve) => setImmediate(resolve));
          return response.writableNeedDrain || seq > 200_000;
        },
        'the stream to wait for its client',
        60_000,
        0,
      );
      assert.equal(response.writableNeedDrain, true);
      await store.write(pointEntries(topic, seq, MAX_QUEUED_ENTRIES + 1));
      // The stream's promise settles when its response closes: that is when routes.ts gives the slot back.
      const closed = await waitFor(
        () =>
          Promise.race([
            finished[0]!.then(() => true),
            new Promise<false>((resolve) => setTimeout(() => resolve(false), 100)),
          ]),
        'the stream of a client that does not read to be cut',
        15_000,
        0,
      );
      assert.equal(closed, true);
    },
  );
});

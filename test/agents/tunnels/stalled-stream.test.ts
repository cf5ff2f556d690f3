/**
 * One stuck stream stalls nobody: a client that stops reading holds its own window and nothing
 * more, while the other streams over the same link finish their transfers, and the bytes held for
 * streams stay bounded at the IT agent, the relay and the OT agent throughout (the buffered-byte
 * counters of all three). The throughput ratio itself is measured in bench:tunnel.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { MAX_STREAM_CHUNK_BYTES } from '../../../relay/protocol/streams.ts';
import { waitFor } from '../../support/wait.ts';
import { connectClient, service, startTarget, startTunnelPlant, type TunnelPlant } from './tunnel-fixture.ts';

/** Bytes the target sends down every stream: several windows, so a stalled reader fills its window. */
const DOWNLOAD_BYTES = 8 * 1024 * 1024;
const STREAMS = 6;
const WINDOW = 256 * 1024;

describe('tunnel flow control - a stalled reader', () => {
  let plant: TunnelPlant;
  let target: Awaited<ReturnType<typeof startTarget>>;
  const download = randomBytes(DOWNLOAD_BYTES);

  before(async () => {
    target = await startTarget((socket) => socket.end(download));
    plant = await startTunnelPlant({
      services: [service('download', target.address)],
      entrances: ['download'],
      window: WINDOW,
    });
  });
  after(async () => {
    await plant.close();
    await target.close();
  });

  it('leaves the other streams to finish, and every end holds at most its windows', async () => {
    const clients = await Promise.all(
      Array.from({ length: STREAMS }, () => connectClient(plant.address('download'))),
    );
    const [stalled, ...others] = clients as [(typeof clients)[0], ...typeof clients];
    stalled.socket.pause();
    const most = { entrance: 0, exit: 0, relay: 0 };
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        most.entrance = Math.max(most.entrance, plant.entrance.stats().bufferedBytes);
        most.exit = Math.max(most.exit, plant.exit.stats().bufferedBytes);
        const lane = (await plant.relay.relay.metrics.maxTunnelQueuedBytes.get()).values[0]?.value ?? 0;
        most.relay = Math.max(most.relay, lane);
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    })();
    try {
      for (const client of others) assert.equal(await client.ended, 'end');
      for (const client of others) assert.equal(client.bytes(), DOWNLOAD_BYTES);
      for (const client of others) client.socket.end();
      // The stalled stream is still open, holding no more than its window.
      await waitFor(() => plant.exit.stats().open === 1, 'only the stalled stream left open');
      assert.ok(stalled.bytes() < DOWNLOAD_BYTES);
    } finally {
      sampling = false;
      await sampler;
    }
    // Per end: a window of received bytes not yet written, plus one socket read, per stream.
    const bound = STREAMS * (WINDOW + MAX_STREAM_CHUNK_BYTES);
    assert.ok(most.entrance <= bound, `the entrance held ${most.entrance} bytes (bound ${bound})`);
    assert.ok(most.exit <= bound, `the exit held ${most.exit} bytes (bound ${bound})`);
    assert.ok(most.relay <= STREAMS * WINDOW, `the relay's bulk lane held ${most.relay} bytes`);
    // The stalled reader reads again: nothing of its stream was lost meanwhile.
    stalled.socket.resume();
    assert.equal(await stalled.ended, 'end');
    stalled.socket.end();
    assert.ok(Buffer.concat(stalled.received).equals(download));
    await waitFor(() => plant.exit.stats().open === 0, 'the last stream done');
  });
});

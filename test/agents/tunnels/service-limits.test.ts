/**
 * What an OT agent's service allows, enforced at its end: a stream with no byte either way for the
 * idle time is closed, a service at its stream limit refuses the next, and a service's bytes per
 * second hold its streams back (a lower bound on the time, which a loaded machine only lengthens).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '../../support/wait.ts';
import {
  connectClient,
  echo,
  service,
  startTarget,
  startTunnelPlant,
  type TunnelClient,
  type TunnelPlant,
} from './tunnel-fixture.ts';

const RATE = 256 * 1024;
const RATED_BYTES = 1024 * 1024;

describe('tunnel service limits - idle time, streams, bytes per second', () => {
  let plant: TunnelPlant;
  let target: Awaited<ReturnType<typeof startTarget>>;
  let download: Awaited<ReturnType<typeof startTarget>>;

  before(async () => {
    target = await startTarget(echo);
    download = await startTarget((socket) => socket.end(Buffer.alloc(RATED_BYTES, 1)));
    plant = await startTunnelPlant({
      services: [
        service('idle', target.address, { idleTimeoutMs: 300 }),
        service('two', target.address, { maxStreams: 2 }),
        service('slow', download.address, { bytesPerSecond: RATE }),
      ],
      entrances: ['idle', 'two', 'slow'],
    });
  });
  after(async () => {
    await plant.close();
    await target.close();
    await download.close();
  });

  async function echoing(name: string): Promise<TunnelClient> {
    const client = await connectClient(plant.address(name));
    client.socket.write('x');
    await waitFor(() => client.text() === 'x', `${name} echoing`);
    return client;
  }

  it('closes a stream idle for longer than the service allows, on both ends', async () => {
    const client = await echoing('idle');
    assert.equal(await client.ended, 'ECONNRESET');
    const closed = await plant.relay.audit.waitFor(
      (entry) => entry.event === 'tunnel.closed' && entry['service'] === 'idle',
      'the idle stream audited',
    );
    assert.equal(closed['reason'], 'AGENT_ERR_TUNNEL_IDLE');
  });

  it('refuses a stream past the service limit, and takes one again once a stream ended', async () => {
    const first = await echoing('two');
    await echoing('two');
    const third = await connectClient(plant.address('two'));
    assert.equal(await third.ended, 'ECONNRESET');
    const refused = await plant.relay.audit.waitFor(
      (entry) => entry.event === 'tunnel.refused' && entry['service'] === 'two',
      'the third stream refused',
    );
    assert.equal(refused['reason'], 'AGENT_ERR_TUNNEL_LIMIT');
    first.socket.destroy();
    await waitFor(() => plant.exit.stats().open === 1, 'the first stream gone');
    const again = await echoing('two');
    again.socket.destroy();
  });

  it("holds a service's streams to its bytes per second", async () => {
    const started = performance.now();
    const client = await connectClient(plant.address('slow'));
    assert.equal(await client.ended, 'end');
    const seconds = (performance.now() - started) / 1000;
    assert.equal(client.bytes(), RATED_BYTES);
    // One second's worth passes at once (the bucket starts full), the rest at the rate.
    const floor = (RATED_BYTES - RATE) / RATE;
    assert.ok(seconds >= floor * 0.9, `${RATED_BYTES} bytes took ${seconds.toFixed(2)} s, under ${floor} s`);
    client.socket.destroy();
  });
});

/**
 * Entrances to one OT agent share one session and so the relay's streams per session. A local
 * process that holds every stream it can get on one entrance must not starve the others: each
 * entrance keeps a fair share (the session's limit over the entrances to that agent) for itself,
 * and takes more only while that leaves every other entrance its share.
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

const MAX_STREAMS_PER_SESSION = 6;

describe('tunnel - entrances to one OT agent share its session fairly', () => {
  let plant: TunnelPlant;
  let target: Awaited<ReturnType<typeof startTarget>>;

  before(async () => {
    target = await startTarget(echo);
    plant = await startTunnelPlant({
      services: [service('hog', target.address), service('poller', target.address)],
      entrances: ['hog', 'poller'],
      relay: { limits: { maxStreamsPerSession: MAX_STREAMS_PER_SESSION } },
    });
  });
  after(async () => {
    await plant.close();
    await target.close();
  });

  it('keeps the other entrance its share while one holds all it can get, and lends what is free', async () => {
    const held: TunnelClient[] = [];
    for (let index = 0; index < MAX_STREAMS_PER_SESSION + 2; index++) {
      const client = await connectClient(plant.address('hog'));
      client.socket.write('h');
      held.push(client);
    }
    // The hog gets its share and what the poller does not use beyond its own share: 6 - 3 = 3.
    await waitFor(() => held.filter((client) => client.text() === 'h').length === 3, 'the hog echoing');
    const poller = await connectClient(plant.address('poller'));
    poller.socket.write('p');
    await waitFor(() => poller.text() === 'p', 'the poller echoing beside the hog');
    for (const client of held) client.socket.destroy();
    poller.socket.destroy();
    await waitFor(() => plant.entrance.stats().open === 0, 'every stream closed');
    // With the poller idle, the hog may borrow up to the session limit less the poller's share.
    const again: TunnelClient[] = [];
    for (let index = 0; index < 3; index++) {
      const client = await connectClient(plant.address('hog'));
      client.socket.write('x');
      again.push(client);
    }
    await waitFor(() => again.every((client) => client.text() === 'x'), 'the hog echoing within its share');
    for (const client of again) client.socket.destroy();
    assert.equal(
      plant.relay.audit.entries.filter((entry) => entry['reason'] === 'RELAY_ERR_TOO_MANY').length,
      0,
    );
  });
});

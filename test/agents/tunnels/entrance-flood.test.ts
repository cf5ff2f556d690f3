/**
 * A local user on the IT host floods an entrance (it listens on loopback, open to every local
 * process): thousands of connects, each dropped at once or left hanging. The IT agent stays
 * connected to the relay, the relay's stream limits hold throughout, a stream already open on
 * another entrance keeps echoing, and once the flood is over every entrance opens streams again
 * with nothing left over (no stream at the relay, none at either agent).
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '../../support/wait.ts';
import {
  connectClient,
  echo,
  service,
  startTarget,
  startTunnelPlant,
  type TunnelPlant,
} from './tunnel-fixture.ts';

const FLOOD_CONNECTS = 3_000;
/** Connects in flight at once: a local script's worth, well within one process's descriptors. */
const CONCURRENCY = 200;
const MAX_STREAMS_PER_SESSION = 32;

describe('tunnel - a local flood of an entrance', () => {
  let plant: TunnelPlant;
  let target: Awaited<ReturnType<typeof startTarget>>;

  before(async () => {
    target = await startTarget(echo);
    plant = await startTunnelPlant({
      services: [service('echo', target.address, { maxStreams: 64 }), service('other', target.address)],
      entrances: ['echo', 'other'],
      relay: { limits: { maxStreamsPerSession: MAX_STREAMS_PER_SESSION } },
    });
  });
  after(async () => {
    await plant.close();
    await target.close();
  });

  /** One flood connect: dropped as soon as it is up, or (every third) left until the agent ends it. */
  function floodOnce(index: number): Promise<void> {
    return new Promise((resolve) => {
      const socket: Socket = connect(plant.address('echo'));
      socket.on('error', () => undefined);
      socket.on('close', () => resolve());
      socket.on('connect', () => {
        if (index % 3 !== 0) socket.destroy();
        else socket.setTimeout(2_000, () => socket.destroy());
      });
    });
  }

  it(`survives ${FLOOD_CONNECTS} local connects: limits hold, open streams go on, new ones work after`, async (t) => {
    const kept = await connectClient(plant.address('other'));
    kept.socket.write('a');
    await waitFor(() => kept.text() === 'a', 'the kept stream echoing');
    let most = 0;
    const sampler = setInterval(() => {
      most = Math.max(most, plant.relay.relay.broker.streamCount);
    }, 2);
    try {
      let next = 0;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < FLOOD_CONNECTS) await floodOnce(next++);
        }),
      );
    } finally {
      clearInterval(sampler);
    }
    const audited = plant.relay.audit.entries.filter((entry) => entry.event.startsWith('tunnel.')).length;
    // Refused by the relay's stream limit or the service's connect rate (not the clients that left).
    const refusedAtRelay = plant.relay.audit.entries.filter(
      (entry) => entry.event === 'tunnel.refused' && entry['reason'] !== 'AGENT_ERR_TUNNEL_CLIENT_FAILED',
    ).length;
    t.diagnostic(
      `most streams at the relay ${most}, refused there ${refusedAtRelay}, counted refused by the entrance ${plant.entrance.stats().refused}, tunnel audit lines ${audited}`,
    );
    // Status counts them: every client reset before its stream opened, by the entrance's own share
    // of the session (entrance-share.test.ts) or by the relay or the OT agent, less the clients that
    // went away before the answer came.
    const { refused } = plant.entrance.stats();
    assert.ok(
      refused > refusedAtRelay && refused <= FLOOD_CONNECTS,
      `the entrance counted ${refused} clients refused, the relay ${refusedAtRelay}`,
    );
    assert.ok(most <= MAX_STREAMS_PER_SESSION, `the relay held ${most} streams in the one session`);
    assert.equal(plant.it.closed, false, "the IT agent's link survived the flood");
    kept.socket.write('b');
    await waitFor(() => kept.text() === 'ab', 'the kept stream still echoing');
    kept.socket.destroy();
    await waitFor(
      () => plant.relay.relay.broker.streamCount === 0 && plant.entrance.stats().open === 0,
      'every flood stream gone at the relay and the entrance',
      30_000,
    );
    await waitFor(() => plant.exit.stats().open === 0, 'every flood stream gone at the exit', 30_000);
    for (const name of ['echo', 'other']) {
      const client = await connectClient(plant.address(name));
      client.socket.write(name);
      await waitFor(() => client.text() === name, `a new stream on ${name} echoing`);
      client.socket.destroy();
    }
  });
});

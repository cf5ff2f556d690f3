/**
 * An IT agent with a grant opens and at once closes streams as fast as the relay lets it: each
 * open makes the OT agent connect to the device, and a PLC's TCP stack (a handful of connections,
 * a slow accept) is the last thing that should take a connect storm from the business network.
 * The service's streams limit bounds connections at once, not their rate: before the fix, 1,000
 * open-and-close pairs made 167 connections to the device in 0.4 s (and thousands a second at the
 * relay's default rate limit). A service now opens at most SERVICE_CONNECTS_PER_SECOND target
 * connections a second (a second's worth at once), refusing the rest
 * (AGENT_ERR_TUNNEL_CONNECT_RATE), and the device sees a bounded number.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SERVICE_CONNECTS_PER_SECOND } from '../../../agents/tunnels/exit.ts';
import { waitFor } from '../../support/wait.ts';
import {
  connectClient,
  echo,
  OT_NAME,
  service,
  startTarget,
  startTunnelPlant,
  TUNNEL_POLICY,
  type TunnelPlant,
} from './tunnel-fixture.ts';

const HOSTILE_IT = 'mallory';
const OPENS = 1_000;
const MAX_STREAMS = 8;

describe('tunnel - a storm of stream opens against one device', () => {
  let plant: TunnelPlant;
  let target: Awaited<ReturnType<typeof startTarget>>;
  let connections = 0;

  before(async () => {
    target = await startTarget((socket) => {
      connections++;
      echo(socket);
    });
    plant = await startTunnelPlant({
      services: [service('plc', target.address, { maxStreams: MAX_STREAMS })],
      entrances: ['plc'],
      relay: {
        limits: { messagesPerSecond: 10_000_000 },
        policy: [...TUNNEL_POLICY, { agent: HOSTILE_IT, tunnel: [`${OT_NAME}/+`] }],
      },
    });
  });
  after(async () => {
    await plant.close();
    await target.close();
  });

  it(`${OPENS} opens and closes reach the device as a bounded number of connections`, async (t) => {
    const raw = await plant.relay.connectRaw('it', HOSTILE_IT, { answerPings: true });
    const { session } = await raw.openSession(OT_NAME, `${OT_NAME}/+`);
    const startedAt = Date.now();
    for (let stream = 1; stream <= OPENS; stream++) {
      raw.send({ type: 'streamOpen', session, stream, service: 'plc', window: 65_536 });
      raw.send({ type: 'streamClose', session, stream, code: 'AGENT_ERR_TUNNEL_CLIENT_FAILED' });
      if (stream % 100 === 0) await raw.roundTrip();
    }
    await raw.roundTrip();
    await waitFor(() => plant.exit.stats().open === 0, 'every stream gone at the exit', 30_000);
    // Counted in the OT agent's status (the relay audits each as the IT agent's own close, which
    // reached it first).
    assert.ok(plant.exit.stats().refused > 0);
    const seconds = (Date.now() - startedAt) / 1000;
    t.diagnostic(`${connections} connections to the device in ${seconds.toFixed(1)} s`);
    // A second's worth at once, then the rate.
    const rate = Math.max(SERVICE_CONNECTS_PER_SECOND, MAX_STREAMS);
    const bound = rate * (1 + Math.ceil(seconds));
    assert.ok(connections <= bound, `${connections} connections (bound ${bound})`);
    raw.terminate();
    // The storm over, an honest client is served again as soon as the budget has refilled.
    await waitFor(
      async () => {
        const client = await connectClient(plant.address('plc'));
        client.socket.write('ping');
        const served = await Promise.race([
          waitFor(() => client.text() === 'ping', 'the echo').then(() => true),
          client.ended.then(() => false),
        ]);
        client.socket.destroy();
        return served;
      },
      'an honest client served',
      10_000,
      100,
    );
  });
});

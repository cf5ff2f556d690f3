/**
 * One IT agent cannot lock the others out of an OT agent's service: each holds at most its
 * `maxStreamsPerPeer` of the service's streams (by default an equal share among the agents the
 * service's `allow` list names), the next of its streams is refused with its own code while another
 * agent still opens its own, and a stream that finishes in any way (its end, a reset, the idle
 * time, the session's end, the OT agent's link lost) gives its agent the slot back.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { HostPort } from '../../../agents/tunnels/tunnel-config.ts';
import { waitFor } from '../../support/wait.ts';
import {
  connectClient,
  echo,
  IT_NAME,
  OT_NAME,
  service,
  startItEnd,
  startTarget,
  startTunnelPlant,
  type ItEnd,
  type TunnelClient,
  type TunnelPlant,
} from './tunnel-fixture.ts';

/** The second IT agent the services admit, through an entrance as well. */
const OTHER_IT = 'historian';
/** The third, speaking the protocol itself: it opens as many sessions as the relay lets it. */
const RAW_IT = 'eng';
/** A share of two streams each for the three agents the allowlist names: one stream stays free. */
const SHARED_STREAMS = 7;
const SHARE = 2;

describe('tunnel streams per IT agent - one agent cannot take a service from the others', () => {
  let plant: TunnelPlant;
  let other: ItEnd;
  let target: Awaited<ReturnType<typeof startTarget>>;

  before(async () => {
    target = await startTarget(echo);
    const allow = [IT_NAME, OTHER_IT, RAW_IT];
    plant = await startTunnelPlant({
      services: [
        service('shared', target.address, { maxStreams: SHARED_STREAMS, allow }),
        service('brief', target.address, { maxStreams: 2, allow, idleTimeoutMs: 300 }),
      ],
      entrances: ['shared', 'brief'],
      relay: {
        policy: [
          { role: 'ot' },
          { agent: IT_NAME, tunnel: [`${OT_NAME}/+`] },
          { agent: OTHER_IT, tunnel: [`${OT_NAME}/+`] },
          { agent: RAW_IT, tunnel: [`${OT_NAME}/+`] },
        ],
      },
    });
    other = await startItEnd(plant.pki, plant.relay, OTHER_IT, ['shared', 'brief']);
  });
  after(async () => {
    await other.close();
    await plant.close();
    await target.close();
  });

  const refusalsOf = (agent: string, name: string) =>
    plant.relay.audit.entries.filter(
      (entry) => entry.event === 'tunnel.refused' && entry['service'] === name && entry['it'] === agent,
    );

  async function echoing(address: HostPort): Promise<TunnelClient> {
    const client = await connectClient(address);
    client.socket.write('x');
    await waitFor(() => client.text() === 'x', 'the stream echoing');
    return client;
  }

  /** The next stream of `agent` to `name` is reset, and the relay audits the OT agent's refusal. */
  async function refusedAtItsBound(agent: string, address: HostPort, name: string): Promise<void> {
    const seen = refusalsOf(agent, name).length;
    const client = await connectClient(address);
    const refusal = await waitFor(() => refusalsOf(agent, name)[seen], `a refusal of ${agent}'s stream`);
    assert.equal(refusal['reason'], 'AGENT_ERR_TUNNEL_PEER_LIMIT');
    assert.equal(refusal['ot'], OT_NAME);
    assert.equal(await client.ended, 'ECONNRESET');
  }

  async function noStreamsLeft(): Promise<void> {
    await waitFor(
      () =>
        plant.exit.stats().open === 0 &&
        plant.entrance.stats().open === 0 &&
        other.entrance.stats().open === 0,
      'no stream left open',
    );
  }

  it("refuses an agent's stream past its share with AGENT_ERR_TUNNEL_PEER_LIMIT, while another agent opens its own", async () => {
    const held = [await echoing(plant.address('shared')), await echoing(plant.address('shared'))];
    await refusedAtItsBound(IT_NAME, plant.address('shared'), 'shared');
    // The service has streams to spare, and they are the other agent's.
    held.push(await echoing(other.address('shared')), await echoing(other.address('shared')));
    // A bound, not a reservation: the service's last stream is free, and neither agent gets it.
    await refusedAtItsBound(OTHER_IT, other.address('shared'), 'shared');
    assert.equal(plant.exit.stats().open, 2 * SHARE);
    for (const client of held) client.socket.destroy();
    await noStreamsLeft();
  });

  it('holds an agent to its share across all its sessions: a new session brings no new streams', async () => {
    const raw = await plant.relay.connectRaw('it', RAW_IT, { answerPings: true });
    try {
      const refusalOf = async (session: number, stream: number) => {
        raw.send({ type: 'streamOpen', session, stream, service: 'shared', window: 4096 });
        // The OT agent's accept (its first credit) or its refusal.
        const answer = await waitFor(
          () =>
            raw.frames.find(
              (frame) =>
                (frame.type === 'streamWindow' || frame.type === 'streamClose') &&
                frame.session === session &&
                frame.stream === stream,
            ),
          `the answer to stream ${stream} of session ${session}`,
        );
        return answer.type === 'streamClose' ? answer.code : undefined;
      };
      for (let opened = 0; opened < SHARE; opened++) {
        const { session } = await raw.openSession(OT_NAME, `${OT_NAME}/+`);
        assert.equal(await refusalOf(session, 1), undefined, `stream ${opened + 1} accepted`);
      }
      const { session } = await raw.openSession(OT_NAME, `${OT_NAME}/+`);
      assert.equal(await refusalOf(session, 1), 'AGENT_ERR_TUNNEL_PEER_LIMIT');
    } finally {
      raw.terminate();
    }
    await noStreamsLeft();
  });

  it('gives the slot back when a stream ends both ways, or is reset by the client', async () => {
    const [first, second] = [await echoing(plant.address('shared')), await echoing(plant.address('shared'))];
    await refusedAtItsBound(IT_NAME, plant.address('shared'), 'shared');
    first?.socket.end();
    assert.equal(await first?.ended, 'end');
    await waitFor(() => plant.exit.stats().open < SHARE, 'the ended stream finished at the OT agent');
    const third = await echoing(plant.address('shared'));
    await refusedAtItsBound(IT_NAME, plant.address('shared'), 'shared');
    second?.socket.destroy();
    await waitFor(() => plant.exit.stats().open < SHARE, 'the reset stream finished at the OT agent');
    const fourth = await echoing(plant.address('shared'));
    await refusedAtItsBound(IT_NAME, plant.address('shared'), 'shared');
    third.socket.destroy();
    fourth.socket.destroy();
    await noStreamsLeft();
  });

  it('gives the slot back when the OT agent closes an idle stream', async () => {
    const idle = await echoing(plant.address('brief'));
    await refusedAtItsBound(IT_NAME, plant.address('brief'), 'brief');
    assert.equal(await idle.ended, 'ECONNRESET');
    const again = await echoing(plant.address('brief'));
    again.socket.destroy();
    await noStreamsLeft();
  });

  it("gives an agent's slots back when its session ends with its link", async () => {
    for (let round = 0; round < 2; round++) {
      await echoing(other.address('shared'));
      await echoing(other.address('shared'));
      await refusedAtItsBound(OTHER_IT, other.address('shared'), 'shared');
      await other.close();
      await noStreamsLeft();
      other = await startItEnd(plant.pki, plant.relay, OTHER_IT, ['shared', 'brief']);
    }
  });

  it("gives every agent's slots back when the OT agent's link is lost", async () => {
    for (let round = 0; round < 2; round++) {
      const held = [await echoing(plant.address('shared')), await echoing(plant.address('shared'))];
      await refusedAtItsBound(IT_NAME, plant.address('shared'), 'shared');
      await plant.reconnectOt();
      for (const client of held) assert.equal(await client.ended, 'ECONNRESET');
      await noStreamsLeft();
    }
  });
});

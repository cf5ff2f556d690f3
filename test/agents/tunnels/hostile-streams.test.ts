/**
 * Agents that break the stream protocol on purpose, over real mTLS against the real relay and a
 * real OT exit: an IT agent with a tunnel grant of its own (mallory) and a second OT agent (rogue)
 * try to reach streams that are not theirs, send data after their own end, name services the
 * grammar forbids, and reuse a stream number the OT agent still holds. Each is refused with a
 * clear code, and the honest stream beside them (scada's, through the entrance) carries on.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { FRAME_KIND, type ToRelayFrame } from '../../../relay/protocol/frames.ts';
import type { RawAgent } from '../../support/raw-agent.ts';
import { rawFrame } from '../../support/raw-frame.ts';
import { waitFor } from '../../support/wait.ts';
import { HostileSender } from './hostile-sender.ts';
import {
  connectClient,
  echo,
  OT_NAME,
  service,
  startTarget,
  startTunnelPlant,
  TUNNEL_POLICY,
  type TunnelClient,
  type TunnelPlant,
} from './tunnel-fixture.ts';

const HOSTILE_IT = 'mallory';
const ROGUE_OT = 'rogue';
const WINDOW = 256 * 1024;

describe('tunnel - hostile agents against the streams', () => {
  let plant: TunnelPlant;
  let echoTarget: Awaited<ReturnType<typeof startTarget>>;
  /** Ends its side at once and never reads: what the exit writes to it stays queued. */
  let deafTarget: Awaited<ReturnType<typeof startTarget>>;
  const raws: RawAgent[] = [];
  const clients: TunnelClient[] = [];

  before(async () => {
    echoTarget = await startTarget(echo);
    deafTarget = await startTarget((socket) => {
      socket.pause();
      socket.end();
    });
    plant = await startTunnelPlant({
      services: [service('echo', echoTarget.address), service('deaf', deafTarget.address)],
      entrances: ['echo'],
      window: WINDOW,
      relay: { policy: [...TUNNEL_POLICY, { agent: HOSTILE_IT, tunnel: [`${OT_NAME}/+`] }] },
    });
  });
  afterEach(() => {
    for (const raw of raws.splice(0)) raw.terminate();
    for (const client of clients.splice(0)) client.socket.destroy();
  });
  after(async () => {
    await plant.close();
    await echoTarget.close();
    await deafTarget.close();
  });

  async function mallory(): Promise<{ raw: RawAgent; session: number }> {
    const raw = await plant.relay.connectRaw('it', HOSTILE_IT, { answerPings: true });
    raws.push(raw);
    const { session } = await raw.openSession(OT_NAME, `${OT_NAME}/+`);
    return { raw, session };
  }

  /** scada's stream through the entrance, echoing; with its numbers as the relay audited them. */
  async function honestStream(): Promise<{ client: TunnelClient; session: number; stream: number }> {
    const opened = plant.relay.audit.entries.filter((entry) => entry.event === 'tunnel.opened').length;
    const client = await connectClient(plant.address('echo'));
    clients.push(client);
    client.socket.write('ping');
    await waitFor(() => client.text() === 'ping', 'the honest stream echoing');
    const entry = plant.relay.audit.entries.filter((e) => e.event === 'tunnel.opened')[opened];
    assert.ok(entry, 'the honest stream audited as opened');
    return { client, session: entry['session'] as number, stream: entry['stream'] as number };
  }

  it("refuses data, credit, closes and opens in another agent's session, and the stream goes on", async () => {
    const honest = await honestStream();
    const { raw: it } = await mallory();
    const rogue = await plant.relay.connectRaw('ot', ROGUE_OT, { answerPings: true });
    raws.push(rogue);
    const { session, stream } = honest;
    const received = plant.exit.stats().bytesReceived;
    const streams = plant.relay.relay.broker.streamCount;
    const attacks: ToRelayFrame[] = [
      { type: 'streamData', session, stream, data: Buffer.from('forged') },
      { type: 'streamWindow', session, stream, credit: 4096 },
      { type: 'streamClose', session, stream, code: 'AGENT_ERR_TUNNEL_IDLE' },
      { type: 'streamOpen', session, stream: stream + 1, service: 'echo', window: 1024 },
    ];
    for (const attacker of [it, rogue]) {
      for (const attack of attacks) attacker.send(attack);
      await attacker.roundTrip();
      const codes = attacker.frames.filter((frame) => frame.type === 'error').map((frame) => frame.code);
      assert.deepEqual(
        codes,
        attacks.map(() => 'RELAY_ERR_NO_SUCH_SESSION'),
      );
      assert.equal(attacker.closed, undefined);
    }
    honest.client.socket.write('-still');
    await waitFor(() => honest.client.text() === 'ping-still', 'the honest stream still echoing');
    assert.equal(
      plant.exit.stats().bytesReceived,
      received + '-still'.length,
      'no forged byte reached the target',
    );
    assert.equal(plant.relay.relay.broker.streamCount, streams);
  });

  it('refuses data after the sender ended its side, and the other direction still finishes', async () => {
    const { raw, session } = await mallory();
    raw.send({ type: 'streamOpen', session, stream: 1, service: 'echo', window: WINDOW });
    await raw.next('streamWindow', (frame) => frame.session === session && frame.stream === 1);
    raw.send({ type: 'streamData', session, stream: 1, data: Buffer.from('ping'), end: true });
    raw.send({ type: 'streamData', session, stream: 1, data: Buffer.from('more') });
    const refusal = await raw.next('error', (frame) => frame.stream === 1);
    assert.equal(refusal.code, 'RELAY_ERR_BAD_STATE');
    // The echo answers what came before the end, and ends its side: the stream is done.
    await raw.next('streamData', (frame) => frame.stream === 1 && frame.end === true);
    const echoed = raw.frames
      .filter((frame) => frame.type === 'streamData' && frame.stream === 1)
      .map((frame) => (frame.type === 'streamData' ? Buffer.from(frame.data).toString() : ''))
      .join('');
    assert.equal(echoed, 'ping');
    const closed = await plant.relay.audit.waitFor(
      (entry) => entry.event === 'tunnel.closed' && entry['it'] === HOSTILE_IT && entry['stream'] === 1,
      "mallory's stream closed",
    );
    assert.deepEqual([closed['reason'], closed['bytesToOt'], closed['bytesToIt']], ['end', 4, 4]);
  });

  const badNames: [string, string][] = [
    ['65 characters', 'e'.repeat(65)],
    ['a NUL', 'ec\u0000ho'],
    ['a newline', 'echo\nforged'],
    ['a Cyrillic o (a confusable)', 'ech\u043e'],
    ['a path', 'echo/../deaf'],
    ['dots', '..'],
    ['nothing', ''],
  ];
  for (const [what, name] of badNames) {
    it(`refuses a service name with ${what} before policy: nothing forwarded, nothing audited`, async () => {
      const { raw, session } = await mallory();
      const audited = plant.relay.audit.entries.length;
      const refused = plant.exit.stats().refused;
      raw.sendRaw(rawFrame(FRAME_KIND.streamOpen, { session, stream: 9, service: name, window: 1024 }));
      await raw.roundTrip();
      assert.equal(raw.frames.find((frame) => frame.type === 'error')?.code, 'RELAY_ERR_INVALID_FRAME');
      assert.equal(plant.relay.audit.entries.length, audited);
      assert.equal(plant.exit.stats().refused, refused);
      assert.equal(plant.relay.relay.broker.streamCount, 0);
    });
  }

  it('a service the grant covers but the OT agent does not offer is refused by the OT agent', async () => {
    const { raw, session } = await mallory();
    raw.send({ type: 'streamOpen', session, stream: 3, service: 'ssh', window: 1024 });
    const closed = await raw.next('streamClose', (frame) => frame.stream === 3);
    assert.equal(closed.code, 'AGENT_ERR_TUNNEL_NO_SERVICE');
    const audited = await plant.relay.audit.waitFor(
      (entry) => entry.event === 'tunnel.refused' && entry['service'] === 'ssh',
      'the refusal audited',
    );
    assert.equal(audited['reason'], 'AGENT_ERR_TUNNEL_NO_SERVICE');
  });

  it('refuses a stream number the OT agent still holds, with no second connection to the target', async () => {
    const { raw, session } = await mallory();
    raw.send({ type: 'streamOpen', session, stream: 1, service: 'deaf', window: WINDOW });
    await raw.next('streamWindow', (frame) => frame.session === session && frame.stream === 1);
    // Bytes the target never reads, then our end: the target ended its side at once, so the relay
    // sees both ends and forgets the stream, while the exit still has bytes to write to the target.
    await new HostileSender(raw, session, 1).fillKernelBuffers(() => plant.exit.stats().bufferedBytes);
    raw.send({ type: 'streamData', session, stream: 1, data: new Uint8Array(0), end: true });
    await plant.relay.audit.waitFor(
      (entry) => entry.event === 'tunnel.closed' && entry['service'] === 'deaf' && entry['reason'] === 'end',
      'the relay done with the stream',
    );
    assert.equal(plant.exit.stats().open, 1, 'the exit still writing to the target');
    raw.send({ type: 'streamOpen', session, stream: 1, service: 'deaf', window: WINDOW });
    const refusal = await raw.next('streamClose', (frame) => frame.stream === 1);
    assert.equal(refusal.code, 'AGENT_ERR_TUNNEL_STREAM_IN_USE');
    assert.equal(deafTarget.sockets.size, 1, 'no second connection to the target');
    // The session's end takes the stream the exit held (it is still in the exit's table).
    raw.send({ type: 'sessionClose', session });
    await waitFor(() => plant.exit.stats().open === 0, 'the exit done with the stream');
    assert.equal(plant.exit.stats().open, 0);
  });
});

/**
 * A hostile end of a stream spends its credit as 1-byte data frames towards a local peer that does
 * not read (the target at the exit, the client at the entrance). Every frame becomes a queued
 * socket write at the receiving agent, ~280 bytes of heap whatever its size: with credit counted
 * in bytes alone, 262,144 such frames (256 KiB of credit) held ~73 MB at the agent, and a
 * service's 16 streams of 1 MiB would hold gigabytes on the OT host for one IT agent with a grant.
 * A frame now spends at least MIN_STREAM_FRAME_CREDIT, at the relay as at both ends
 * (relay/protocol/streams.ts): the relay refuses the frames beyond it, and the agent holds at
 * most a window's worth of frames.
 *
 * Each case: the hostile end, a RawAgent over real mTLS, first fills the slow peer's kernel
 * buffers with large frames (writes then queue in the agent), keeping RESERVE bytes of credit
 * back, then sends RESERVE 1-byte frames as if each cost one byte. The heap after a full GC may
 * grow by little.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it, type TestContext } from 'node:test';
import { MIN_STREAM_FRAME_CREDIT } from '../../../relay/protocol/streams.ts';
import type { RawAgent } from '../../support/raw-agent.ts';
import { waitFor } from '../../support/wait.ts';
import { HostileSender } from './hostile-sender.ts';
import {
  connectClient,
  IT_NAME,
  OT_NAME,
  service,
  startTarget,
  startTunnelPlant,
  TUNNEL_POLICY,
  type TunnelClient,
  type TunnelPlant,
} from './tunnel-fixture.ts';
import { heapAfterGc } from '../../support/heap.ts';

const WINDOW = 1024 * 1024;
/** Credit kept back for the 1-byte frames, and as many frames: ~18 MB of queued writes without the rule. */
const RESERVE = 64 * 1024;
/** With the rule: the ~1,000 frames the credit admits (well under 1 MB), and the GC's noise. */
const GROWTH_BOUND_BYTES = 8 * 1024 * 1024;
const HOSTILE_IT = 'mallory';

/**
 * Fills the slow peer's kernel buffers, then sends RESERVE 1-byte frames; waits until the agent
 * has every byte the relay let through (`received`), and returns the heap's growth meanwhile.
 */
async function floodTinyFrames(
  t: TestContext,
  raw: RawAgent,
  sender: HostileSender,
  held: () => number,
  received: () => number,
): Promise<number> {
  await sender.fillKernelBuffers(held, RESERVE);
  const before = heapAfterGc();
  const filled = sender.sent;
  const spentOnFill = sender.spent;
  for (let sent = 0; sent < RESERVE; sent++) {
    sender.send(1);
    if (sent % 4096 === 4095) await new Promise((resolve) => setImmediate(resolve));
  }
  await raw.roundTrip(60_000);
  const refused = raw.frames.filter(
    (frame) => frame.type === 'error' && frame.code === 'RELAY_ERR_STREAM_CREDIT',
  ).length;
  const passed = RESERVE - refused;
  const credit = sender.granted - spentOnFill;
  await waitFor(() => received() === filled + passed, 'every byte let through at the agent', 60_000);
  assert.ok(
    passed <= credit / MIN_STREAM_FRAME_CREDIT,
    `the relay let ${passed} 1-byte frames through on ${credit} bytes of credit`,
  );
  raw.frames.length = 0; // the recorder's own frames are not the agent's heap
  const growth = heapAfterGc() - before;
  t.diagnostic(
    `${passed} of ${RESERVE} frames let through; heap growth ${(growth / 1024 / 1024).toFixed(1)} MB`,
  );
  assert.equal(raw.closed, undefined);
  return growth;
}

describe('tunnel - a flood of 1-byte frames to a peer that does not read', () => {
  let plant: TunnelPlant;
  let target: Awaited<ReturnType<typeof startTarget>>;
  const clients: TunnelClient[] = [];

  before(async () => {
    // The target never reads: what the exit writes to it stays queued once the kernel is full.
    target = await startTarget((socket) => socket.pause());
    plant = await startTunnelPlant({
      services: [service('sink', target.address)],
      entrances: ['sink'],
      window: WINDOW,
      relay: {
        // The relay's default rate limit (50,000 frames a second) is not the point here.
        limits: { messagesPerSecond: 10_000_000 },
        policy: [...TUNNEL_POLICY, { agent: HOSTILE_IT, tunnel: [`${OT_NAME}/+`] }],
      },
    });
  });
  afterEach(() => {
    for (const client of clients.splice(0)) client.socket.destroy();
  });
  after(async () => {
    await plant.close();
    await target.close();
  });

  it('the OT agent holds a window of frames from a hostile IT agent at most', async (t) => {
    const raw = await plant.relay.connectRaw('it', HOSTILE_IT, { answerPings: true });
    const { session } = await raw.openSession(OT_NAME, `${OT_NAME}/+`);
    raw.send({ type: 'streamOpen', session, stream: 1, service: 'sink', window: WINDOW });
    await raw.next('streamWindow', (frame) => frame.session === session && frame.stream === 1);
    const growth = await floodTinyFrames(
      t,
      raw,
      new HostileSender(raw, session, 1),
      () => plant.exit.stats().bufferedBytes,
      () => plant.exit.stats().bytesReceived,
    );
    assert.ok(growth < GROWTH_BOUND_BYTES, `the heap grew by ${(growth / 1024 / 1024).toFixed(1)} MB`);
    assert.ok(plant.exit.stats().bufferedBytes <= WINDOW, 'the exit holds at most its window');
    raw.terminate();
  });

  it('the IT agent holds a window of frames from a hostile OT agent at most', async (t) => {
    // The real OT agent leaves; a hostile one takes its name (its own certificate).
    plant.ot.terminate();
    await waitFor(() => plant.exit.stats().open === 0 && plant.ot.closed, 'the real OT agent gone');
    const raw = await plant.relay.connectRaw('ot', OT_NAME, { answerPings: true });
    const client = await connectClient(plant.address('sink'));
    clients.push(client);
    client.socket.pause(); // the IT client never reads
    const session = await raw.acceptOffer(IT_NAME);
    const open = await raw.next('streamOpen', (frame) => frame.session === session);
    raw.send({ type: 'streamWindow', session, stream: open.stream, credit: WINDOW });
    const received = plant.entrance.stats().bytesReceived;
    const growth = await floodTinyFrames(
      t,
      raw,
      new HostileSender(raw, session, open.stream, open.window),
      () => plant.entrance.stats().bufferedBytes,
      () => plant.entrance.stats().bytesReceived - received,
    );
    assert.ok(growth < GROWTH_BOUND_BYTES, `the heap grew by ${(growth / 1024 / 1024).toFixed(1)} MB`);
    assert.ok(plant.entrance.stats().bufferedBytes <= WINDOW, 'the entrance holds at most its window');
    raw.terminate();
  });
});

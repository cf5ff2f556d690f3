/**
 * Two colluding agents cannot make the relay hold more than their credit: an OT agent grants
 * credit and stops reading its link, and an IT agent spends that credit as 1-byte data frames,
 * which wait in the relay's bulk lane for the OT agent (~390 bytes of heap each, measured). With
 * credit counted in bytes alone, 65,536 such frames held ~26 MB at the relay, and 64 streams of
 * 4 MiB in 1-byte frames would have held ~100 GB: the lane's bound was in bytes, not in memory. A
 * frame now spends at least MIN_STREAM_FRAME_CREDIT (relay/protocol/streams.ts), so the frames a
 * grant admits, and the memory they take, are bounded by the grant.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MAX_STREAM_CHUNK_BYTES, MAX_STREAM_WINDOW_BYTES } from '../../relay/protocol/streams.ts';
import { readMetric } from '../support/metrics.ts';
import type { RawAgent } from '../support/raw-agent.ts';
import { startTestRelay, type TestRelay } from '../support/relay-harness.ts';
import { createTestPki } from '../support/test-pki.ts';
import { waitFor } from '../support/wait.ts';
import { heapAfterGc } from '../support/heap.ts';

/** Streams whose large frames fill the OT agent's socket, so that the lane holds what comes next. */
const FILL_STREAMS = 3;
const TINY_STREAM = FILL_STREAMS + 1;
const TINY_CREDIT = 2 * 1024 * 1024;
const TINY_FRAMES = 65_536;
/** Memory per byte of credit the lane may take for tiny frames (~475 bytes per 512 of credit measured). */
const LANE_FACTOR = 2;
const NOISE_BYTES = 2 * 1024 * 1024;

describe('relay tunnels - the bulk lane under a flood of 1-byte frames', () => {
  let t: TestRelay;
  let rogue: RawAgent;
  let mallory: RawAgent;
  let session: number;

  before(async () => {
    t = await startTestRelay(await createTestPki(), {
      policy: [{ role: 'ot' }, { agent: 'mallory', tunnel: ['rogue/+'] }],
      // The relay's default rate limit (50,000 frames a second) is not the point here.
      limits: { messagesPerSecond: 10_000_000 },
    });
    rogue = await t.connectRaw('ot', 'rogue');
    mallory = await t.connectRaw('it', 'mallory');
    [{ session }] = await Promise.all([
      mallory.openSession('rogue', 'rogue/+'),
      rogue.acceptOffer('mallory'),
    ]);
  });
  after(async () => {
    await t.stop();
  });

  it(`holds ${TINY_FRAMES} 1-byte frames on ${TINY_CREDIT / 1024 / 1024} MiB of credit within ${LANE_FACTOR}x the credit`, async (test) => {
    for (let stream = 1; stream <= TINY_STREAM; stream++) {
      mallory.send({ type: 'streamOpen', session, stream, service: 'x', window: 1024 });
      await rogue.next('streamOpen', (frame) => frame.stream === stream);
      const credit = stream === TINY_STREAM ? TINY_CREDIT : MAX_STREAM_WINDOW_BYTES;
      rogue.send({ type: 'streamWindow', session, stream, credit });
    }
    await mallory.next('streamWindow', (frame) => frame.stream === TINY_STREAM);
    rogue.pauseReading();
    for (let stream = 1; stream <= FILL_STREAMS; stream++) {
      for (let sent = 0; sent < MAX_STREAM_WINDOW_BYTES; sent += MAX_STREAM_CHUNK_BYTES)
        mallory.send({ type: 'streamData', session, stream, data: new Uint8Array(MAX_STREAM_CHUNK_BYTES) });
    }
    await waitFor(
      async () => (await readMetric(t.relay, 'dmz_relay_max_tunnel_queued_bytes')) > 0,
      "the OT agent's socket full, the lane holding bulk",
      30_000,
    );
    const before = heapAfterGc();
    for (let sent = 0; sent < TINY_FRAMES; sent++) {
      mallory.send({ type: 'streamData', session, stream: TINY_STREAM, data: new Uint8Array(1) });
      if (sent % 4096 === 4095) await new Promise((resolve) => setImmediate(resolve));
    }
    await mallory.roundTrip(60_000);
    const refused = mallory.frames.filter(
      (frame) => frame.type === 'error' && frame.code === 'RELAY_ERR_STREAM_CREDIT',
    ).length;
    mallory.frames.length = 0; // the recorder's own frames are not the relay's heap
    const growth = heapAfterGc() - before;
    test.diagnostic(
      `${TINY_FRAMES - refused} frames let through; heap growth ${(growth / 1024 / 1024).toFixed(1)} MB`,
    );
    assert.ok(refused > 0, 'the relay refused the frames beyond the credit');
    const bound = LANE_FACTOR * TINY_CREDIT + NOISE_BYTES;
    assert.ok(growth < bound, `the heap grew by ${(growth / 1024 / 1024).toFixed(1)} MB (bound ${bound})`);
    assert.equal(rogue.closed, undefined, 'the OT agent is still connected: the lane held it all');
  });
});

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { readMetric } from '../../support/metrics.ts';
import { startTestRelay, type TestRelay } from '../../support/relay-harness.ts';
import { createTestPki, type TestPki } from '../../support/test-pki.ts';

const LIMITS = {
  messagesPerSecond: 200,
  bytesPerSecond: 128 * 1024,
  maxSessionsPerAgent: 40,
  maxSessionsPerPair: 5,
  maxSubscriptionsPerAgent: 100,
  maxPendingRequestsPerAgent: 30,
  maxStreamsPerSession: 12,
};

describe('relay/server welcome', () => {
  let pki: TestPki;
  let t: TestRelay;
  before(async () => {
    pki = await createTestPki();
    // One refusal tolerated, the second cuts: the paced link below must cause none at all.
    t = await startTestRelay(pki, {
      limits: { ...LIMITS, maxFrameBytes: 64 * 1024, violationsBeforeDisconnect: 1 },
    });
  });
  after(() => t.stop());

  it('relay - the welcome announces the limits the relay holds this agent to', async () => {
    const agent = await t.connect('it', 'historian');
    assert.deepEqual(agent.client.welcome.limits, LIMITS);
    assert.equal(agent.client.welcome.maxFrameBytes, 64 * 1024);
  });

  it('relay - a link that sends whenever its budget lets it is never refused for rate', async () => {
    const agent = await t.connect('ot', 'press-7');
    const link = agent.client;
    // Twice the message rate's worth of frames, each of about a fifth of a frame cut by the budget.
    const point = new Uint8Array(Math.floor(link.budget.frameBytes / 5));
    for (let seq = 1; seq <= 2 * LIMITS.messagesPerSecond; seq++) {
      await link.whenWritable(Infinity);
      link.publish('press-7/speed', seq, [point]);
    }
    await link.close();
    assert.equal(
      await readMetric(t.relay, 'dmz_relay_frame_errors_total', { code: 'RELAY_ERR_RATE_LIMITED' }),
      0,
    );
    assert.equal(
      await readMetric(t.relay, 'dmz_relay_disconnects_total', { reason: 'RELAY_ERR_RATE_LIMITED' }),
      0,
    );
    assert.ok((await readMetric(t.relay, 'dmz_relay_frames_received_total')) >= 2 * LIMITS.messagesPerSecond);
  });
});

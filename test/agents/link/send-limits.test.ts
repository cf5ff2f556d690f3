/**
 * The link under the rates a relay announces in its welcome, against a scripted relay (real mTLS
 * on port 0): a relay that announces none (an older one) gets frames as fast as the agent sends
 * them; one that does gets them paced by whenWritable, with every frame counted, control frames
 * included, and a frame it refuses for rate pauses the link.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RelayLink } from '../../../agents/link/relay-link.ts';
import type { ToAgentFrameOf } from '../../../relay/protocol/frames.ts';
import { startScriptedRelay, welcomeFrame, type ScriptedRelay } from '../../support/scripted-relay.ts';
import { createTestPki, type TestPki } from '../../support/test-pki.ts';
import { expectNever, waitFor } from '../../support/wait.ts';

const POINT = [Uint8Array.of(1, 2, 3)];

let pki: TestPki;
before(async () => {
  pki = await createTestPki();
});

async function connect(relay: ScriptedRelay): Promise<RelayLink> {
  const credentials = await pki.issueAgent('ot', 'press-7');
  return RelayLink.connect({ url: relay.url, caPem: pki.ca.certPem, ...credentials });
}

function relayWith(welcome: ToAgentFrameOf<'welcome'>): Promise<ScriptedRelay> {
  return startScriptedRelay(pki, (peer) => peer.send(welcome));
}

describe('agents/link send limits - a relay that announces none', () => {
  let relay: ScriptedRelay;
  before(async () => {
    relay = await relayWith(welcomeFrame());
  });
  after(() => relay.close());

  it('link - sends whatever it is asked to, as fast as asked, as before the announcement', async () => {
    const link = await connect(relay);
    const peer = await relay.peer();
    assert.equal(link.welcome.limits, undefined);
    assert.equal(link.budget.limited, false);
    assert.equal(link.budget.frameBytes, link.welcome.maxFrameBytes);
    for (let seq = 1; seq <= 2000; seq++) {
      assert.ok(link.budget.allows(1, 100));
      link.publish('press-7/speed', seq, POINT);
    }
    await waitFor(
      () => peer.received.filter((frame) => frame.type === 'publish').length === 2000,
      'every frame',
    );
    await link.close();
  });
});

describe('agents/link send limits - a relay that announces its rates', () => {
  // One frame a second: the bucket holds one, and refills in 1.1 s (90%).
  const LIMITED = { ...welcomeFrame(), limits: { messagesPerSecond: 1, bytesPerSecond: 64 * 1024 } };
  let relay: ScriptedRelay;
  before(async () => {
    relay = await relayWith(LIMITED);
  });
  after(() => relay.close());

  it('link - lets one frame go per turn of the budget, and counts control frames it must send anyway', async () => {
    const link = await connect(relay);
    const peer = await relay.peer();
    assert.deepEqual(link.welcome.limits, LIMITED.limits);
    assert.equal(link.budget.limited, true);
    await link.whenWritable(Infinity);
    link.publish('press-7/speed', 1, POINT);
    assert.equal(link.budget.allows(1, 0), false, 'the budget is spent');
    let writable = false;
    const next = link.whenWritable(Infinity).then(() => {
      writable = true;
    });
    await expectNever(() => writable, 'room before the budget refilled', 500);
    // A ping is answered at once, budget or not; its pong spends from the budget too.
    const before = link.budget.waitMs();
    peer.send({ type: 'ping', nonce: 9 });
    await waitFor(() => peer.received.some((frame) => frame.type === 'pong'), 'the pong');
    assert.ok(link.budget.waitMs() > before, 'the pong counted');
    await next;
    await link.close();
  });

  it('link - pauses after a frame the relay refused for rate', async () => {
    const link = await connect(relay);
    const peer = await relay.peer();
    assert.equal(link.budget.waitMs(), 0);
    peer.send({ type: 'error', code: 'RELAY_ERR_RATE_LIMITED', message: 'rate limit exceeded' });
    await waitFor(() => link.budget.refusals === 1, 'the refusal noted');
    assert.ok(link.budget.waitMs() > 0);
    await link.close();
  });

  it('link - lets whoever waits for the budget go once the link closes', async () => {
    const link = await connect(relay);
    const peer = await relay.peer();
    link.publish('press-7/speed', 1, POINT);
    const next = link.whenWritable(Infinity);
    peer.terminate();
    await next;
    assert.equal(link.closed, true);
  });
});

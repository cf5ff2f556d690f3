import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { PolicyRule } from '../../../relay/server/config.ts';
import {
  startTestRelay,
  testConfig,
  type RecordingAgent,
  type TestRelay,
} from '../../support/relay-harness.ts';
import { createTestPki, type TestPki } from '../../support/test-pki.ts';

/** Offers an OT agent received, by the IT agent that asked. */
const offersTo = (ot: RecordingAgent): string[] =>
  ot.frames.flatMap((frame) => (frame.type === 'sessionOpen' ? [frame.peer] : []));

/** Finding 4 of the security review: sessions with OT agents an IT agent has no grant for. */
describe('relay/server session scope', () => {
  let pki: TestPki;
  let t: TestRelay;

  before(async () => {
    pki = await createTestPki();
    t = await startTestRelay(pki, {
      policy: [
        { role: 'ot' },
        { agent: 'intruder', subscribe: ['press-7/#'] },
        { agent: 'dashboard', subscribe: ['press-9/#'] },
        { agent: 'wide-viewer', subscribe: ['#'] },
      ],
    });
  });
  after(() => t.stop());

  it('relay - an IT agent granted only press-7/# gets FORBIDDEN for press-9 under #, +/# and +/+; press-9 sees no offer', async () => {
    const press9 = await t.connect('ot', 'press-9');
    const intruder = await t.connect('it', 'intruder');
    const dashboard = await t.connect('it', 'dashboard');
    for (const filter of ['#', '+/#', '+/+']) {
      await assert.rejects(intruder.client.openSession('press-9', filter), { code: 'RELAY_ERR_FORBIDDEN' });
      await t.audit.waitFor(
        (entry) =>
          entry.event === 'session.refused' &&
          entry['agent'] === 'intruder' &&
          entry['filter'] === filter &&
          entry['reason'] === 'RELAY_ERR_FORBIDDEN',
        `refusal of ${filter}`,
      );
    }
    // A granted agent's offer travels the same socket after any the intruder's could have caused.
    await dashboard.client.openSession('press-9', 'press-9/#');
    await press9.next('sessionOpen', (frame) => frame.peer === 'dashboard');
    assert.deepEqual(offersTo(press9), ['dashboard']);
  });

  it("relay - inside a wide session, a subscription to another OT agent's topics is refused and never reaches the OT agent", async () => {
    const press7 = await t.connect('ot', 'press-7');
    const viewer = await t.connect('it', 'wide-viewer');
    const { session } = await viewer.client.openSession('press-7', '#');
    await assert.rejects(viewer.client.subscribe(session, 'press-9/#'), { code: 'RELAY_ERR_FORBIDDEN' });
    await viewer.client.subscribe(session, 'press-7/temps/#');
    await press7.next('subscribe', (frame) => frame.filter === 'press-7/temps/#');
    assert.deepEqual(
      press7.frames.flatMap((frame) => (frame.type === 'subscribe' ? [frame.filter] : [])),
      ['press-7/temps/#'],
    );
  });
});

/** The same rule on policy reload: press-7 loses its publish grant for `shared/alarms/#`. */
describe('relay/server session scope on policy reload', () => {
  const policyBefore: readonly Partial<PolicyRule>[] = [
    { role: 'ot' },
    { agent: 'press-7', publish: ['shared/alarms/#'] },
    { agent: 'alarm-desk', subscribe: ['shared/alarms/#'] },
    { agent: 'wide-viewer', subscribe: ['#'] },
  ];
  const policyAfter = policyBefore.filter((rule) => rule.agent !== 'press-7');
  let pki: TestPki;
  let t: TestRelay;

  before(async () => {
    pki = await createTestPki();
    t = await startTestRelay(pki, { policy: policyBefore });
  });
  after(() => t.stop());

  it("relay - a reload ends a session that only the OT agent's old publish grant allowed, and withdraws a subscription only it served", async () => {
    const press7 = await t.connect('ot', 'press-7');
    const desk = await t.connect('it', 'alarm-desk');
    // Raw: the withdrawal of a subscription comes as an error frame, which the agent link keeps to itself.
    const viewer = await t.connectRaw('it', 'wide-viewer');
    const alarms = await desk.client.openSession('press-7', 'shared/alarms/#');
    const wide = await viewer.openSession('press-7', '#');
    await viewer.subscribe(wide.session, 'shared/#');
    await viewer.subscribe(wide.session, 'press-7/#');

    assert.deepEqual(t.relay.applyConfig(testConfig(pki, t.config.state, { policy: policyAfter })), []);

    const closed = await desk.next('sessionClose');
    assert.deepEqual([closed.session, closed.code], [alarms.session, 'RELAY_ERR_POLICY_CHANGED']);
    const withdrawn = await viewer.next('error', (frame) => frame.session === wide.session);
    assert.equal(withdrawn.code, 'RELAY_ERR_POLICY_CHANGED');
    await press7.next('unsubscribe', (frame) => frame.session === wide.session);
    assert.deepEqual(
      press7.frames.flatMap((frame) => (frame.type === 'unsubscribe' ? [frame.filter] : [])),
      ['shared/#'],
    );
    // The wide session itself stays: press-7's own namespace still lies in it.
    press7.client.publish('press-7/temps/t1', 1, [Uint8Array.of(1)]);
    assert.equal((await viewer.next('deliver')).session, wide.session);
    assert.equal(
      viewer.frames.find((frame) => frame.type === 'sessionClose'),
      undefined,
    );
  });
});

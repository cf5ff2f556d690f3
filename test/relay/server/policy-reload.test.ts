import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { PolicyRule } from '../../../relay/server/config.ts';
import type { FrameRecorder } from '../../support/frame-recorder.ts';
import type { RawAgent } from '../../support/raw-agent.ts';
import { startTestRelay, testConfig, type AuditEntry, type TestRelay } from '../../support/relay-harness.ts';
import { createTestPki, type TestPki } from '../../support/test-pki.ts';
import { waitFor } from '../../support/wait.ts';

type Rules = readonly Partial<PolicyRule>[];

/** Every test starts from this policy, then reloads a variant of it. */
const BASE: Rules = [
  { role: 'ot' },
  { agent: 'press-7', publish: ['shared/alarms/#'] },
  { agent: 'historian', subscribe: ['press-7/#', 'shared/#'] },
  { agent: 'mes', subscribe: ['press-7/#'] },
  { agent: 'dashboard', subscribe: ['press-7/#'] },
  { agent: 'contractor', subscribe: ['press-7/#'] },
];

/** BASE with the rule for `agent` replaced (or dropped when `rule` is undefined). */
function withRule(agent: string, rule: Partial<PolicyRule> | undefined): Rules {
  return BASE.flatMap((existing) =>
    existing.agent === agent ? (rule === undefined ? [] : [rule]) : [existing],
  );
}

const deliveredTopics = (agent: FrameRecorder): string[] =>
  agent.frames.flatMap((frame) => (frame.type === 'deliver' ? [frame.topic] : []));

/**
 * The agents are raw, answering pings but nothing else: what a reload does shows in frames the
 * agent link keeps to itself (an error withdrawing a subscription, or refusing a publish).
 */
describe('relay/server policy reload', () => {
  let pki: TestPki;
  let t: TestRelay;
  let ot: RawAgent;
  let seq = 0;

  before(async () => {
    pki = await createTestPki();
    t = await startTestRelay(pki, { policy: BASE });
  });
  after(() => t.stop());

  /** Applies `policy` as a full configuration reload; resolves with the audit entry it leaves. */
  async function reload(policy: Rules): Promise<AuditEntry> {
    const from = t.audit.entries.length;
    const restartRequired = t.relay.applyConfig(testConfig(pki, t.config.state, { policy }));
    assert.deepEqual(restartRequired, [], 'a policy change must not need a restart');
    return waitFor(
      () => t.audit.entries.slice(from).find((entry) => entry.event === 'policy.reloaded'),
      'policy.reloaded audit entry',
    );
  }

  /** Connects `name` (IT) with a session to press-7 under `filter`, subscribed to `subscriptions`. */
  async function consumer(
    name: string,
    filter: string,
    subscriptions: readonly string[],
  ): Promise<{ it: RawAgent; session: number }> {
    const it = await t.connectRaw('it', name, { answerPings: true });
    const { session } = await openSession(it, name, filter);
    for (const subscription of subscriptions) await it.subscribe(session, subscription);
    return { it, session };
  }

  /** A session of `it` (named `name`) with press-7, which accepts it. */
  async function openSession(it: RawAgent, name: string, filter: string) {
    const [accepted] = await Promise.all([it.openSession('press-7', filter), ot.acceptOffer(name)]);
    return accepted;
  }

  function publish(topic: string): void {
    ot.send({ type: 'publish', topic, seq: ++seq, count: 1, points: Uint8Array.of(seq % 256) });
  }

  /** Publishes on press-7 and waits until `it` has it: everything published before was routed. */
  async function publishAndAwait(it: RawAgent, topic: string): Promise<void> {
    publish(topic);
    const expected = seq;
    await it.next('deliver', (frame) => frame.seq === expected);
  }

  async function startFromBase(): Promise<void> {
    await reload(BASE);
    if (ot === undefined || ot.closed !== undefined)
      ot = await t.connectRaw('ot', 'press-7', { answerPings: true });
  }

  it('relay - a session the new policy still allows survives the reload and keeps receiving', async () => {
    await startFromBase();
    const { it } = await consumer('historian', 'press-7/#', ['press-7/temps/#']);
    const audited = await reload(withRule('mes', { agent: 'mes', subscribe: ['press-9/#'] }));
    await publishAndAwait(it, 'press-7/temps/t1');
    assert.deepEqual(deliveredTopics(it), ['press-7/temps/t1']);
    assert.equal(
      it.frames.find((frame) => frame.type === 'sessionClose' || frame.type === 'error'),
      undefined,
      'the surviving session was disturbed',
    );
    assert.equal((await openSession(it, 'historian', 'press-7/#')).peer, 'press-7');
    assert.deepEqual(
      [audited['disconnected'], audited['sessionsClosed'], audited['subscriptionsWithdrawn']],
      [0, 0, 0],
    );
    it.terminate();
  });

  it('relay - a session whose grant was removed ends on both sides with POLICY_CHANGED', async () => {
    await startFromBase();
    const { it, session } = await consumer('mes', 'press-7/#', ['press-7/#']);
    const audited = await reload(withRule('mes', { agent: 'mes', subscribe: ['press-9/#'] }));
    const atIt = await it.next('sessionClose');
    const atOt = await ot.next('sessionClose', (frame) => frame.session === session);
    assert.deepEqual([atIt.session, atIt.code], [session, 'RELAY_ERR_POLICY_CHANGED']);
    assert.equal(atOt.code, 'RELAY_ERR_POLICY_CHANGED');
    assert.equal(it.closed, undefined, 'the agent itself is still admitted');
    await assert.rejects(it.subscribe(session, 'press-7/#'), { code: 'RELAY_ERR_NO_SUCH_SESSION' });
    await assert.rejects(it.openSession('press-7', 'press-7/#'), { code: 'RELAY_ERR_FORBIDDEN' });
    assert.equal(audited['sessionsClosed'], 1);
    it.terminate();
  });

  it('relay - a subscription whose grant narrowed is withdrawn; the rest of the session stays', async () => {
    await startFromBase();
    const { it, session } = await consumer('dashboard', 'press-7/#', ['press-7/#', 'press-7/temps/t1']);
    const audited = await reload(
      withRule('dashboard', { agent: 'dashboard', subscribe: ['press-7/temps/#'] }),
    );
    const error = await it.next('error');
    assert.deepEqual([error.session, error.code], [session, 'RELAY_ERR_POLICY_CHANGED']);
    const unsubscribed = await ot.next(
      'unsubscribe',
      (frame) => frame.session === session && frame.filter === 'press-7/#',
    );
    assert.equal(unsubscribed.filter, 'press-7/#', 'the OT agent stops sending what is no longer wanted');
    assert.equal(
      ot.frames.filter((frame) => frame.type === 'unsubscribe' && frame.session === session).length,
      1,
      'only the narrowed subscription is withdrawn',
    );
    publish('press-7/flows/f1');
    await publishAndAwait(it, 'press-7/temps/t1');
    assert.deepEqual(deliveredTopics(it), ['press-7/temps/t1']);
    assert.equal(audited['subscriptionsWithdrawn'], 1);
    it.terminate();
  });

  it('relay - an agent removed from policy is disconnected with 1008 POLICY_CHANGED', async () => {
    await startFromBase();
    const { it, session } = await consumer('contractor', 'press-7/#', ['press-7/#']);
    const audited = await reload(withRule('contractor', undefined));
    assert.deepEqual(await it.waitClosed(), { code: 1008, reason: 'RELAY_ERR_POLICY_CHANGED' });
    const atOt = await ot.next('sessionClose', (frame) => frame.session === session);
    assert.equal(atOt.code, 'RELAY_ERR_POLICY_CHANGED');
    await assert.rejects(t.connect('it', 'contractor'), /\(1008 RELAY_ERR_FORBIDDEN\)/);
    assert.equal(audited['disconnected'], 1);
    assert.equal(audited['rules'], BASE.length - 1);
  });

  it('relay - a publish grant narrowed by reload stops the stream it no longer allows', async () => {
    await startFromBase();
    const { it } = await consumer('historian', 'shared/#', ['shared/#']);
    await publishAndAwait(it, 'shared/alarms/overtemp');
    await reload(withRule('press-7', { agent: 'press-7', publish: ['shared/alarms/critical/#'] }));
    publish('shared/alarms/overtemp');
    const error = await ot.next('error', (frame) => frame.code === 'RELAY_ERR_FORBIDDEN');
    assert.match(error.message, /shared\/alarms\/overtemp/);
    await publishAndAwait(it, 'shared/alarms/critical/fire');
    assert.deepEqual(deliveredTopics(it), ['shared/alarms/overtemp', 'shared/alarms/critical/fire']);
    it.terminate();
  });
});

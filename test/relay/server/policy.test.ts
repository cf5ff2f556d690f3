import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AgentIdentity } from '../../../relay/protocol/identity.ts';
import { validateRelayConfig } from '../../../relay/server/config.ts';
import { Policy } from '../../../relay/server/policy.ts';

function policyOf(rules: unknown[]): Policy {
  return new Policy(
    validateRelayConfig({ trustDomain: 'plant.example', state: 's', policy: rules }, '/').policy,
  );
}

const agent = (role: 'ot' | 'it', name: string): AgentIdentity => ({
  trustDomain: 'plant.example',
  role,
  name,
});
const press = agent('ot', 'press-7');
const historian = agent('it', 'historian');
const hmi = agent('it', 'hmi');

describe('policy', () => {
  const policy = policyOf([
    { role: 'ot' },
    { agent: 'press-7', publish: ['shared/alarms/#'] },
    { agent: 'historian', subscribe: ['press-7/#'], command: ['press-7/setpoints/+'] },
  ]);

  it('denies by default: an agent no rule names is not admitted', () => {
    assert.equal(policy.admits(hmi), false);
    assert.equal(policyOf([]).admits(press), false);
    assert.equal(policy.admits(press), true);
    assert.equal(policy.admits(historian), true);
  });

  const decisions: [string, () => boolean, boolean][] = [
    ['OT publishes in its own namespace', () => policy.mayPublish(press, 'press-7/temps/t1'), true],
    ['OT publishes its bare name', () => policy.mayPublish(press, 'press-7'), true],
    ['OT publishes into a look-alike namespace', () => policy.mayPublish(press, 'press-70/t'), false],
    ['OT publishes into another agent', () => policy.mayPublish(press, 'press-8/t'), false],
    ['OT publishes where a grant says more', () => policy.mayPublish(press, 'shared/alarms/fire'), true],
    [
      'another OT agent lacks that grant',
      () => policy.mayPublish(agent('ot', 'press-8'), 'shared/alarms/fire'),
      false,
    ],
    ['IT never publishes', () => policy.mayPublish(historian, 'historian/x'), false],
    ['subscribe inside the grant', () => policy.maySubscribe(historian, 'press-7/+/t1'), true],
    ['subscribe wider than the grant', () => policy.maySubscribe(historian, '#'), false],
    ['subscribe to a sibling', () => policy.maySubscribe(historian, 'press-8/#'), false],
    ['command a granted point', () => policy.mayCommand(historian, 'press-7/setpoints/speed'), true],
    [
      'command below the granted level',
      () => policy.mayCommand(historian, 'press-7/setpoints/speed/x'),
      false,
    ],
    ['command outside the grant', () => policy.mayCommand(historian, 'press-7/valves/v1'), false],
    [
      'open a session overlapping a grant',
      () => policy.mayOpenSession(historian, press, 'press-7/temps/#'),
      true,
    ],
    [
      'open a session wider than, but overlapping, a grant',
      () => policy.mayOpenSession(historian, press, '#'),
      true,
    ],
    [
      'open a session disjoint from every grant',
      () => policy.mayOpenSession(historian, press, 'press-8/#'),
      false,
    ],
    ['an OT agent opens a session', () => policy.mayOpenSession(press, press, 'press-7/#'), false],
    [
      'open a session with an IT agent as the peer',
      () => policy.mayOpenSession(historian, agent('it', 'press-7'), 'press-7/#'),
      false,
    ],
    [
      "open a session on the OT agent's publish grant, which no grant of the IT agent reaches",
      () => policy.mayOpenSession(historian, press, 'shared/alarms/fire'),
      false,
    ],
    [
      'subscribe in a session, inside grant, session filter and OT namespace',
      () => policy.maySubscribeInSession(historian, press, '#', 'press-7/temps/+'),
      true,
    ],
    [
      'subscribe in a session to topics the OT agent does not own',
      () => policy.maySubscribeInSession(historian, press, '#', 'shared/other/#'),
      false,
    ],
    [
      'subscribe in a session outside the session filter',
      () => policy.maySubscribeInSession(historian, press, 'press-7/valves/#', 'press-7/temps/#'),
      false,
    ],
    [
      'subscribe in a session beyond the subscribe grant',
      () => policy.maySubscribeInSession(historian, press, 'press-7/#', '#'),
      false,
    ],
  ];
  for (const [name, decide, expected] of decisions) {
    it(`${expected ? 'allows' : 'denies'}: ${name}`, () => assert.equal(decide(), expected));
  }

  /**
   * Finding 4 of the security review: an IT agent granted only `press-7/#` opened sessions with
   * press-9 under filters that overlap its grant and press-9's namespace separately, never at once.
   */
  const scoped = policyOf([
    { role: 'ot' },
    { agent: 'press-7', publish: ['shared/alarms/#'] },
    { agent: 'intruder', subscribe: ['press-7/#'] },
    { agent: 'writer', command: ['press-9/setpoints/+'] },
    { agent: 'alarm-desk', subscribe: ['shared/alarms/#'] },
  ]);
  const intruder = agent('it', 'intruder');
  const writer = agent('it', 'writer');
  const alarmDesk = agent('it', 'alarm-desk');
  const press9 = agent('ot', 'press-9');
  const sessions: [it: AgentIdentity, ot: AgentIdentity, filter: string, expected: boolean][] = [
    [intruder, press9, '#', false],
    [intruder, press9, '+/#', false],
    [intruder, press9, '+/+', false],
    [intruder, press9, 'press-9/#', false],
    [intruder, press9, 'press-7/#', false],
    [intruder, press, '#', true],
    [intruder, press, '+/+', true],
    [intruder, press, 'press-7', true],
    // A command grant alone scopes a session too, but only where it lies.
    [writer, press9, '#', true],
    [writer, press9, '+/setpoints/#', true],
    [writer, press9, '+/valves/#', false],
    [writer, press, '#', false],
    // An OT agent's publish grants count as its topics: press-7's, not press-9's.
    [alarmDesk, press, '#', true],
    [alarmDesk, press, 'shared/+/fire', true],
    [alarmDesk, press9, '#', false],
  ];
  for (const [requester, ot, filter, expected] of sessions) {
    it(`${expected ? 'allows' : 'denies'}: ${requester.name} opens a session with ${ot.name} under ${filter}`, () =>
      assert.equal(scoped.mayOpenSession(requester, ot, filter), expected));
  }

  it('denies a subscription inside a wide session that only another OT agent could serve', () => {
    const wide = policyOf([{ role: 'ot' }, { agent: 'historian', subscribe: ['#'] }]);
    assert.equal(wide.mayOpenSession(historian, press, '#'), true);
    assert.equal(wide.maySubscribeInSession(historian, press, '#', 'press-7/#'), true);
    assert.equal(wide.maySubscribeInSession(historian, press, '#', 'press-9/#'), false);
    assert.equal(wide.maySubscribeInSession(historian, press, '#', '+/temps'), true);
  });

  it('takes the union of every rule naming the agent or its role', () => {
    const union = policyOf([
      { role: 'it', subscribe: ['line-1/#'] },
      { agent: 'hmi', subscribe: ['line-2/#'] },
    ]);
    assert.equal(union.maySubscribe(hmi, 'line-1/a'), true);
    assert.equal(union.maySubscribe(hmi, 'line-2/a'), true);
    assert.equal(union.maySubscribe(historian, 'line-2/a'), false);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { consumersBeyondLimits, type PlannedConsumer } from '../../../agents/it/session-limits.ts';
import type { WelcomeLimits } from '../../../relay/protocol/frames.ts';

const of = (peer: string, count: number, prefix = peer): PlannedConsumer[] =>
  Array.from({ length: count }, (_, index) => ({ name: `${prefix}-${index}`, peer }));

describe('agents/it session limits', () => {
  const CASES: [string, PlannedConsumer[], WelcomeLimits | undefined, string[], RegExp | undefined][] = [
    ['a relay that announces no limits leaves everyone in', of('press-7', 20), undefined, [], undefined],
    [
      'the consumers of one OT agent beyond maxSessionsPerPair, the last in the configuration',
      of('press-7', 10),
      { maxSessionsPerPair: 8 },
      ['press-7-8', 'press-7-9'],
      /^consumer "press-7-[89]" has no session: the relay allows at most 8 sessions between this IT agent and "press-7" \(relay limits\.maxSessionsPerPair\), held by the consumers before it in the configuration \("press-7-0" \.\. "press-7-7"\)$/,
    ],
    [
      'the pair limit counts per OT agent',
      [...of('press-7', 3), ...of('press-8', 3)],
      { maxSessionsPerPair: 3 },
      [],
      undefined,
    ],
    [
      'every consumer beyond maxSessionsPerAgent, whichever OT agent',
      [...of('press-7', 3), ...of('press-8', 3)],
      { maxSessionsPerPair: 8, maxSessionsPerAgent: 4 },
      ['press-8-1', 'press-8-2'],
      /maxSessionsPerAgent/,
    ],
    [
      'every consumer beyond maxSubscriptionsPerAgent (one subscription each)',
      of('press-7', 5),
      { maxSubscriptionsPerAgent: 2 },
      ['press-7-2', 'press-7-3', 'press-7-4'],
      /at most 2 subscriptions per agent \(relay limits\.maxSubscriptionsPerAgent\)/,
    ],
    [
      'a consumer left out takes no place: the next OT agent still gets its sessions',
      [...of('press-7', 3), ...of('press-8', 1)],
      { maxSessionsPerPair: 2, maxSessionsPerAgent: 3 },
      ['press-7-2'],
      /maxSessionsPerPair/,
    ],
  ];
  it('keeps one session of the pair for the tunnel entrances to that OT agent, and counts it per agent', () => {
    const consumers = [...of('press-7', 8), ...of('press-8', 2)];
    const beyond = consumersBeyondLimits(
      consumers,
      { maxSessionsPerPair: 8, maxSessionsPerAgent: 10 },
      new Set(['press-7', 'press-9']),
    );
    assert.deepEqual([...beyond.keys()], ['press-7-7', 'press-8-1']);
    assert.match(
      beyond.get('press-7-7')?.message ?? '',
      /held by the consumers before it in the configuration \("press-7-0" \.\. "press-7-6"\) and the tunnel entrances$/,
    );
    assert.match(beyond.get('press-8-1')?.message ?? '', /maxSessionsPerAgent/);
    const alone = consumersBeyondLimits(of('press-7', 1), { maxSessionsPerPair: 1 }, new Set(['press-7']));
    assert.match(alone.get('press-7-0')?.message ?? '', /held by the tunnel entrances$/);
  });

  for (const [name, consumers, limits, expected, message] of CASES) {
    it(name, () => {
      const beyond = consumersBeyondLimits(consumers, limits);
      assert.deepEqual([...beyond.keys()], expected);
      for (const error of beyond.values()) {
        assert.equal(error.code, 'AGENT_ERR_OVER_RELAY_LIMIT');
        if (message !== undefined) assert.match(error.message, message);
      }
    });
  }
});

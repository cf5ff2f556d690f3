/**
 * The API's per-topic tables (units, writable types): remembered per topic for a screen that asks
 * again and again, but bounded, since POST /writes lets a client name any number of topics.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { topicTable } from '../../../../agents/it/api/entry-bodies.ts';
import { MAX_RECENT_TOPICS } from '../../../../agents/it/sinks/recent-limits.ts';

const RULES = [
  { filter: 'press-7/plc/+/speed', value: 'rpm' },
  { filter: 'press-7/#', value: 'other' },
];

describe('agents/it/api/entry-bodies - topic tables', () => {
  it('remembers at most as many topics as the store holds, whatever is asked', () => {
    const table = topicTable(RULES);
    for (let index = 0; index < MAX_RECENT_TOPICS + 500; index++) table.of(`client/topic-${index}`);
    assert.equal(table.remembered, MAX_RECENT_TOPICS);
  });

  it('answers by the first matching rule, for a topic forgotten and asked again', () => {
    const table = topicTable(RULES, 2);
    assert.equal(table.of('press-7/plc/line-1/speed'), 'rpm');
    assert.equal(table.of('press-7/plc/line-1/temp'), 'other');
    assert.equal(table.of('press-9/plc/line-1/speed'), undefined);
    assert.equal(table.remembered, 2, 'the oldest was forgotten');
    assert.equal(table.of('press-7/plc/line-1/speed'), 'rpm');
  });
});

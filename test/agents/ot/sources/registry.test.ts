import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  checkSourceConfigs,
  createSource,
  SOURCE_TYPES,
  validateSourceConfig,
  type SourceConfig,
} from '../../../../agents/ot/sources/registry.ts';
import { MAX_POINTS_PER_SOURCE } from '../../../../agents/ot/sources/simulator-config.ts';
import { ConfigError, type ConfigIssue } from '../../../../relay/protocol/errors.ts';

const base = { type: 'simulator', name: 'line1' };
const sine = { name: 'temp', signal: 'sine' };

function issuesOf(input: unknown): ConfigIssue[] {
  try {
    validateSourceConfig(input);
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    assert.equal(error.code, 'CONFIG_ERR_INVALID');
    return [...error.issues];
  }
  assert.fail('configuration was accepted');
}

describe('agents/ot/sources registry and source config', () => {
  it('fills defaults and freezes the checked section', () => {
    const config = validateSourceConfig({ ...base, points: [sine] });
    assert.deepEqual(config, { ...base, interval: '1s', batch: 1, limit: 0, points: [sine] });
    assert.ok(Object.isFrozen(config) && Object.isFrozen(config.points[0]));
    assert.deepEqual(SOURCE_TYPES, ['simulator', 'modbus', 'opcua', 'mqtt']);
  });

  it('accepts the documented example', () => {
    assert.doesNotThrow(() =>
      validateSourceConfig({
        type: 'simulator',
        name: 'line1',
        prefix: 'line1',
        interval: '100ms',
        batch: 1,
        points: [
          { name: 'temp', signal: 'sine', period: '60s', min: 20, max: 80, unit: 'degC' },
          { name: 'count', signal: 'ramp', min: 0, max: 1000, step: 1 },
          { name: 'level', signal: 'randomWalk', min: 0, max: 100, step: 0.5, seed: 7 },
          { name: 'mode', signal: 'step', values: [1, 2, 3], period: '10s' },
          { name: 'running', signal: 'toggle', period: '5s' },
        ],
        generate: { count: 100, signal: 'sine' },
        limit: 0,
      }),
    );
  });

  const point = (fields: Record<string, unknown>) => ({ ...base, points: [{ ...sine, ...fields }] });
  const INVALID: [string, unknown, string, RegExp][] = [
    ['not a mapping', ['simulator'], '', /mapping/],
    ['an unknown type', { ...base, type: 'profibus' }, '/type', /one of: simulator/],
    ['no type', { name: 'line1' }, '/type', /one of: simulator/],
    ['no name', { type: 'simulator', points: [sine] }, '/name', /is required/],
    ['an unknown key', { ...point({}), colour: 'red' }, '/colour', /unknown key/],
    ['an unknown point key', point({ colour: 'red' }), '/points/0/colour', /unknown key/],
    [
      'a bad signal',
      point({ signal: 'square' }),
      '/points/0/signal',
      /one of: sine, ramp, randomWalk, step, toggle/,
    ],
    ['min above max', point({ min: 80, max: 20 }), '/points/0/min', /max \(20\)/],
    ['min above the default max', point({ min: 120 }), '/points/0/min', /max \(100\)/],
    [
      'a step signal without values',
      point({ signal: 'step', values: [] }),
      '/points/0/values',
      /at least one/,
    ],
    ['a step signal with no values key', point({ signal: 'step' }), '/points/0/values', /at least one/],
    [
      'step values of two types',
      point({ signal: 'step', values: [1, 'two'] }),
      '/points/0/values/1',
      /number/,
    ],
    [
      'a step value too long',
      point({ signal: 'step', values: ['é'.repeat(40)] }),
      '/points/0/values/0',
      /64 bytes/,
    ],
    ['a point name with a slash', point({ name: 'a/b' }), '/points/0/name', /one topic segment/],
    ['a point name with a space', point({ name: 'te mp' }), '/points/0/name', /space/],
    ['a point name ".."', point({ name: '..' }), '/points/0/name', /not allowed/],
    ['a point name with a wildcard', point({ name: '+' }), '/points/0/name', /wildcard/],
    ['an empty point name', point({ name: '' }), '/points/0/name', /length/],
    [
      'two points of one name',
      { ...base, points: [sine, { name: 'temp', signal: 'ramp' }] },
      '/points/1/name',
      /already used at \/points\/0\/name/,
    ],
    [
      'a generated name already declared',
      { ...base, points: [{ name: 'p0042', signal: 'ramp' }], generate: { count: 100, signal: 'sine' } },
      '/generate',
      /p0042.+\/points\/0\/name/,
    ],
    [
      'a key the signal does not take',
      point({ signal: 'toggle', min: 1 }),
      '/points/0/min',
      /does not apply to signal toggle/,
    ],
    ['values on a sine', point({ values: [1] }), '/points/0/values', /does not apply to signal sine/],
    ['a fractional ramp step', point({ signal: 'ramp', step: 0.5 }), '/points/0/step', /whole number/],
    ['a fractional ramp bound', point({ signal: 'ramp', max: 10.5 }), '/points/0/max', /integer/],
    ['a random walk that cannot move', point({ signal: 'randomWalk', step: 0 }), '/points/0/step', /above 0/],
    ['a negative seed', point({ signal: 'randomWalk', seed: -1 }), '/points/0/seed', /0/],
    ['a number that is not one', point({ min: 'low' }), '/points/0/min', /number/],
    ['a unit too long', point({ unit: 'x'.repeat(33) }), '/points/0/unit', /32/],
    ['an interval without a unit', { ...point({}), interval: '100' }, '/interval', /like 100ms/],
    ['a fractional interval', { ...point({}), interval: '0.5s' }, '/interval', /like 100ms/],
    ['a zero interval', { ...point({}), interval: '0ms' }, '/interval', /from 1ms to 1d/],
    ['an interval over a day', { ...point({}), interval: '2d' }, '/interval', /from 1ms to 1d/],
    ['a period in two units', point({ period: '1m30s' }), '/points/0/period', /like 100ms/],
    ['a batch of 0', { ...point({}), batch: 0 }, '/batch', /1/],
    ['a batch larger than a write', { ...point({}), batch: 5000 }, '/batch', /4096/],
    ['a negative limit', { ...point({}), limit: -1 }, '/limit', /0/],
    ['a prefix with an empty level', { ...point({}), prefix: 'a//b' }, '/prefix', /empty segment/],
    ['a source name with a slash', { ...point({}), name: 'a/b' }, '/name', /one topic segment/],
    ['no points at all', base, '/points', /at least one point/],
    [
      'too many generated points',
      { ...base, generate: { count: MAX_POINTS_PER_SOURCE + 1, signal: 'sine' } },
      '/generate/count',
      /10000/,
    ],
    [
      'too many points, declared and generated',
      { ...point({}), generate: { count: MAX_POINTS_PER_SOURCE, signal: 'sine' } },
      '',
      /at most 10000 points/,
    ],
  ];
  for (const [name, input, path, message] of INVALID) {
    it(`refuses ${name}, naming ${path || 'the root'}`, () => {
      const issues = issuesOf(input);
      const issue = issues.find((found) => found.path === path);
      assert.ok(issue, `no issue at ${path}: ${JSON.stringify(issues)}`);
      assert.match(issue.message, message);
    });
  }

  it('lists every problem at once, under the section path the agent config gives', () => {
    const issues = checkSourceConfigs([
      { ...base, points: [sine] },
      {
        ...base,
        name: 'line2',
        interval: 'soon',
        points: [
          { ...sine, min: 5, max: 1 },
          { name: 'x', signal: 'jump' },
        ],
      },
      { ...base, points: [{ name: 'other', signal: 'ramp' }] },
      { ...base, name: 'line4', prefix: 'line1', points: [sine] },
    ]);
    assert.deepEqual(
      issues.map((issue) => issue.path),
      ['/sources/1/points/1/signal', '/sources/2/name', '/sources/3'],
    );
    // Semantic checks wait for the shape: once the signal is fixed, the rest of line2 is reported.
    const fixed = checkSourceConfigs([
      {
        ...base,
        name: 'line2',
        interval: 'soon',
        points: [
          { ...sine, min: 5, max: 1 },
          { name: 'x', signal: 'ramp' },
        ],
      },
    ]);
    assert.deepEqual(
      fixed.map((issue) => issue.path),
      ['/sources/0/interval', '/sources/0/points/0/min'],
    );
    assert.match(issues[1]!.message, /already used at \/sources\/0\/name/);
    assert.match(issues[2]!.message, /line1\/temp.+\/sources\/0/);
    assert.deepEqual(checkSourceConfigs({}), [{ path: '/sources', message: 'must be a list of sources' }]);
  });

  it('creates a source by type, with its topics and units known before start', () => {
    const config = {
      ...base,
      prefix: 'hall-2/line1',
      points: [
        { ...sine, unit: 'degC' },
        { name: 'count', signal: 'ramp' },
      ],
      generate: { count: 2, signal: 'toggle' },
    } as SourceConfig;
    const source = createSource(config, { agentName: 'press-7' });
    assert.equal(source.name, 'line1');
    assert.equal(source.type, 'simulator');
    assert.deepEqual(source.topics, [
      'press-7/hall-2/line1/temp',
      'press-7/hall-2/line1/count',
      'press-7/hall-2/line1/p0000',
      'press-7/hall-2/line1/p0001',
    ]);
    assert.deepEqual(source.topicMetadata.get('press-7/hall-2/line1/temp'), { unit: 'degC' });
    assert.deepEqual(source.topicMetadata.get('press-7/hall-2/line1/count'), {});
    assert.deepEqual(source.stats(), {
      readings: 0,
      batches: 0,
      failedWrites: 0,
      behind: 0,
      lagMs: 0,
      finished: false,
      lastError: undefined,
    });
  });

  it('refuses at creation a topic that does not fit under the agent name, by key path', () => {
    // press-7/<243 bytes>/temp is 256 bytes, just within the topic limit; .../yyy... is not.
    const long = 'x'.repeat(60);
    const config = {
      ...base,
      prefix: `${long}/${long}/${long}/${long}`,
      points: [sine, { name: 'y'.repeat(60), signal: 'ramp' }],
    };
    assert.throws(
      () => createSource(config as SourceConfig, { agentName: 'press-7', configPath: '/sources/3' }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.deepEqual(
          error.issues.map((issue) => issue.path),
          ['/sources/3/points/1/name'],
        );
        assert.match(error.issues[0]!.message, /press-7.+longer than 256 bytes/);
        return true;
      },
    );
    assert.throws(
      () =>
        createSource({ ...base, points: [] } as unknown as SourceConfig, {
          agentName: 'press-7',
          configPath: '/sources/0',
        }),
      (error: unknown) => error instanceof ConfigError && error.issues[0]?.path === '/sources/0/points',
    );
  });
});

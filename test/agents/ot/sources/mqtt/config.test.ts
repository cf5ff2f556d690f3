import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MQTT_SOURCE } from '../../../../../agents/ot/sources/mqtt/mqtt-source.ts';
import { TopicFilter } from '../../../../../agents/ot/sources/mqtt/filters.ts';
import { parseJsonPath, readJsonPath } from '../../../../../agents/ot/sources/mqtt/json-path.ts';
import { parseTemplate, renderTemplate } from '../../../../../agents/ot/sources/mqtt/topic-template.ts';
import {
  createSource,
  validateSourceConfig,
  type SourceConfig,
} from '../../../../../agents/ot/sources/registry.ts';
import { ConfigError, type ConfigIssue } from '../../../../../relay/protocol/errors.ts';

const broker = { url: 'mqtt://127.0.0.1:1883' };
const mapping = { filter: 'plant/+/temp', topic: 'plant/{1}/temp' };
const base = { type: 'mqtt', name: 'plant', broker, mappings: [mapping] };

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

describe('agents/ot/sources/mqtt config', () => {
  it('fills the defaults and freezes the section', () => {
    const config = validateSourceConfig(base);
    assert.deepEqual(config, {
      ...base,
      broker: { ...broker, keepalive: '30s', clean: true },
      qos: 1,
      buffer: 10_000,
      mappings: [{ ...mapping, value: 'raw', type: 'number', timestampUnit: 'ms' }],
    });
    assert.ok(Object.isFrozen(config) && Object.isFrozen(config.mappings[0]));
  });

  it('accepts the documented example', () => {
    assert.doesNotThrow(() =>
      validateSourceConfig({
        type: 'mqtt',
        name: 'plant-mqtt',
        prefix: 'mqtt',
        broker: {
          url: 'mqtts://broker.ot.local:8883',
          clientId: 'dmz-agent-press-7',
          username: 'dmz-agent',
          passwordFile: '/etc/dmz-agent/mqtt-password',
          ca: '/etc/dmz-agent/mqtt-ca.pem',
          cert: '/etc/dmz-agent/mqtt-client.pem',
          key: '/etc/dmz-agent/mqtt-client.key',
          localAddress: '10.10.0.5',
          keepalive: '30s',
          clean: true,
        },
        qos: 1,
        buffer: 10_000,
        mappings: [
          {
            filter: 'plant/+/temperature',
            topic: 'plant/{1}/temp',
            value: 'raw',
            type: 'number',
            unit: 'degC',
          },
          {
            filter: 'line/+/status/#',
            topic: 'line/{1}/{2}',
            value: '$.data.value',
            type: 'boolean',
            timestamp: '$.ts',
            timestampUnit: 's',
          },
        ],
        sparkplug: { group: 'plant1', edgeNode: 'edge-7' },
      }),
    );
  });

  const brokerWith = (fields: Record<string, unknown>) => ({ ...base, broker: { ...broker, ...fields } });
  const mappingWith = (fields: Record<string, unknown>) => ({
    ...base,
    mappings: [{ ...mapping, ...fields }],
  });
  const INVALID: [string, unknown, string, RegExp][] = [
    ['an unknown key', { ...base, retain: true }, '/retain', /unknown key/],
    ['no broker', { type: 'mqtt', name: 'plant', mappings: [mapping] }, '/broker', /required/],
    ['a websocket URL', brokerWith({ url: 'ws://broker:9001' }), '/broker/url', /mqtt:\/\/ or mqtts:\/\//],
    ['credentials in the URL', brokerWith({ url: 'mqtt://u:p@broker' }), '/broker/url', /passwordFile/],
    ['a URL with a path', brokerWith({ url: 'mqtt://broker/x' }), '/broker/url', /no path/],
    ['a URL with a bad host', brokerWith({ url: 'mqtt://bro%20ker' }), '/broker/url', /DNS name/],
    ['a CA for a plain TCP broker', brokerWith({ ca: '/ca.pem' }), '/broker/ca', /mqtts/],
    [
      'a certificate without its key',
      brokerWith({ url: 'mqtts://b', cert: '/c.pem' }),
      '/broker/key',
      /together/,
    ],
    ['a password without a user name', brokerWith({ passwordFile: '/p' }), '/broker/username', /3\.1\.2\.9/],
    ['a local address that is a name', brokerWith({ localAddress: 'eth1' }), '/broker/localAddress', /IP/],
    [
      'a keep alive in milliseconds',
      brokerWith({ keepalive: '1500ms' }),
      '/broker/keepalive',
      /whole seconds/,
    ],
    ["a keep alive past MQTT's field", brokerWith({ keepalive: '19h' }), '/broker/keepalive', /duration/],
    ['QoS 3', { ...base, qos: 3 }, '/qos', /2/],
    ['a buffer of one', { ...base, buffer: 1 }, '/buffer', /2/],
    ['no mapping and no sparkplug', { ...base, mappings: [] }, '/mappings', /at least one/],
    ['"#" not last', mappingWith({ filter: 'a/#/b', topic: 'a' }), '/mappings/0/filter', /4\.7\.1\.2/],
    ['"+" inside a level', mappingWith({ filter: 'a/b+', topic: 'a' }), '/mappings/0/filter', /4\.7\.1\.3/],
    ['a placeholder with no wildcard', mappingWith({ topic: 'plant/{2}' }), '/mappings/0/topic', /has 1/],
    [
      'a template that is no topic',
      mappingWith({ topic: 'plant/{1}/temp now' }),
      '/mappings/0/topic',
      /space/,
    ],
    ['a JSON path without $', mappingWith({ value: 'data.temp' }), '/mappings/0/value', /start with "\$"/],
    ['a JSON path with a filter', mappingWith({ value: '$.a[?(@.b)]' }), '/mappings/0/value', /offset 3/],
    ['a timestamp of a raw value', mappingWith({ timestamp: '$.ts' }), '/mappings/0/timestamp', /raw/],
    ['an unknown type', mappingWith({ type: 'float' }), '/mappings/0/type', /number, boolean, string/],
    [
      'two mappings of one filter',
      { ...base, mappings: [mapping, { ...mapping, topic: 'other/{1}' }] },
      '/mappings/1/filter',
      /already used at \/mappings\/0\/filter/,
    ],
    [
      'two mappings of one topic',
      {
        ...base,
        mappings: [
          { filter: 'a', topic: 't' },
          { filter: 'b', topic: 't' },
        ],
      },
      '/mappings/1/topic',
      /already used/,
    ],
    ['a Sparkplug group with "/"', { ...base, sparkplug: { group: 'a/b' } }, '/sparkplug/group', /"\/"/],
    [
      'a Sparkplug edge node "+"',
      { ...base, sparkplug: { group: 'g', edgeNode: '+' } },
      '/sparkplug/edgeNode',
      /"\+"/,
    ],
  ];
  for (const [name, input, path, message] of INVALID) {
    it(`refuses ${name}`, () => {
      const issues = issuesOf(input);
      const issue = issues.find((candidate) => candidate.path === path);
      assert.ok(issue, `an issue at ${path}; got ${JSON.stringify(issues)}`);
      assert.match(issue.message, message);
    });
  }

  it('lists the topics of mappings without wildcards as known before start', () => {
    const config = validateSourceConfig({
      ...base,
      prefix: 'mqtt',
      mappings: [mapping, { filter: 'hall/temp', topic: 'hall/temp' }],
    });
    assert.deepEqual(MQTT_SOURCE.topics(config as never), ['mqtt/hall/temp']);
  });

  it('refuses at creation a topic that does not fit under the agent name', () => {
    // Valid alone (195 bytes), too long with a 63-byte agent name in front (259 > 256).
    const config = {
      ...base,
      prefix: ['p', 'q', 'r'].map((letter) => letter.repeat(60)).join('/'),
    } as SourceConfig;
    assert.throws(
      () => createSource(config, { agentName: 'a'.repeat(63), configPath: '/ot/sources/0' }),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.issues.some((issue) => issue.path === '/ot/sources/0/mappings/0/topic'),
    );
  });
});

describe('agents/ot/sources/mqtt topic filters and templates', () => {
  const MATCHES: [string, string, string[] | undefined][] = [
    ['plant/+/temp', 'plant/line1/temp', ['line1']],
    ['plant/+/temp', 'plant/line1/level', undefined],
    ['plant/+/temp', 'plant/temp', undefined],
    ['plant/+', 'plant/', ['']],
    ['plant/#', 'plant/a/b/c', ['a/b/c']],
    ['plant/#', 'plant', ['']],
    ['+/+/#', 'a/b', ['a', 'b', '']],
    ['#', '$SYS/broker/uptime', undefined],
    ['+/broker/uptime', '$SYS/broker/uptime', undefined],
    ['$SYS/#', '$SYS/broker/uptime', ['broker/uptime']],
    ['a/b', 'a/b/c', undefined],
  ];
  for (const [filter, topic, captures] of MATCHES) {
    it(`${filter} ${captures === undefined ? 'does not match' : 'matches'} ${topic}`, () => {
      assert.deepEqual(new TopicFilter(filter).match(topic), captures);
    });
  }

  it('renders the wildcards a template names, in any order', () => {
    assert.equal(renderTemplate(parseTemplate('{2}/x-{1}'), ['a', 'b/c']), 'b/c/x-a');
  });
});

describe('agents/ot/sources/mqtt JSON paths', () => {
  const document = JSON.parse('{"data":{"temp":21.5,"list":[1,2]},"__proto__":7,"a-b":true}') as unknown;
  const READS: [string, unknown][] = [
    ['$', document],
    ['$.data.temp', 21.5],
    ['$.data.list[1]', 2],
    ['$.data.list[2]', undefined],
    ['$.data.missing', undefined],
    ['$.data.temp.deeper', undefined],
    ['$.a-b', true],
    // Own properties only: JSON's __proto__ key is data; an object's inherited members are not.
    ['$.__proto__', 7],
    ['$.data.constructor', undefined],
    ['$.data.list.length', undefined],
  ];
  for (const [path, expected] of READS) {
    it(`${path} reads ${JSON.stringify(expected)}`, () => {
      const steps = parseJsonPath(path);
      assert.ok(Array.isArray(steps), JSON.stringify(steps));
      assert.deepEqual(readJsonPath(document, steps), expected);
    });
  }

  it('refuses paths deeper than its bound', () => {
    assert.match(JSON.stringify(parseJsonPath(`$${'.a'.repeat(17)}`)), /more than 16 steps/);
  });
});

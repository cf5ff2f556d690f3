/**
 * The MQTT bridge's section of agent.yaml, checked as the agent checks it (validateAgentConfig):
 * defaults, paths relative to the config file, and every bad section refused with the key path
 * of what is wrong.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateAgentConfig } from '../../../../agents/runtime/config.ts';
import type { MqttSinkConfig } from '../../../../agents/it/sinks/mqtt/config.ts';
import { ConfigError, type ConfigIssue } from '../../../../relay/protocol/errors.ts';

const BASE_DIR = '/etc/dmz';
const broker = { url: 'mqtt://broker.it.local' };

function itConfig(sink: Record<string, unknown>) {
  return {
    credentials: 'credentials',
    state: '/var/lib/dmz-agent',
    relay: { url: 'wss://relay.example:8443/v1/agent' },
    it: {
      sinks: [{ type: 'mqtt', name: 'plant', ...sink }],
      consume: [{ from: 'press-7', sink: 'plant' }],
    },
  };
}

function bridgeOf(sink: Record<string, unknown>): MqttSinkConfig {
  const config = validateAgentConfig(itConfig(sink), BASE_DIR);
  const [bridge] = config.it?.sinks ?? [];
  if (bridge?.type !== 'mqtt') assert.fail('no mqtt sink');
  return bridge;
}

function issuesOf(sink: Record<string, unknown>): ConfigIssue[] {
  try {
    validateAgentConfig(itConfig(sink), BASE_DIR);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `not a ConfigError: ${String(error)}`);
    return [...error.issues];
  }
  assert.fail('configuration was accepted');
}

describe('mqtt bridge - config', () => {
  it('fills in the defaults and resolves the credential files against the config file', () => {
    const bridge = bridgeOf({
      broker: {
        ...broker,
        url: 'mqtts://broker.it.local',
        username: 'dmz',
        passwordFile: 'mqtt-password',
        ca: 'ca.pem',
      },
    });
    assert.equal(bridge.broker.passwordFile, '/etc/dmz/mqtt-password');
    assert.equal(bridge.broker.ca, '/etc/dmz/ca.pem');
    assert.equal(bridge.retain, true);
    assert.deepEqual(bridge.topics, []);
    assert.equal(bridge.status.prefix, 'dmz/status');
    assert.deepEqual(bridge.inFlight, { messages: 1000, bytes: 1024 * 1024 });
    assert.equal(bridge.sparkplug, undefined);
    assert.ok(Object.isFrozen(bridge));
  });

  const BAD: [string, Record<string, unknown>, string, RegExp][] = [
    ['an unknown key', { broker, qos: 2 }, '/it/sinks/0/qos', /unknown key/],
    ['a name that is a path', { broker, name: '../../etc' }, '/it/sinks/0/name', /letters, digits/],
    ['an unknown broker key', { broker: { ...broker, host: 'x' } }, '/it/sinks/0/broker/host', /unknown key/],
    ['no broker', {}, '/it/sinks/0/broker', /required/],
    [
      'a URL of another scheme',
      { broker: { url: 'http://broker' } },
      '/it/sinks/0/broker/url',
      /mqtt:\/\/ or mqtts:\/\//,
    ],
    [
      'credentials in the URL',
      { broker: { url: 'mqtt://user:secret@broker' } },
      '/it/sinks/0/broker/url',
      /passwordFile/,
    ],
    ['a CA for plain TCP', { broker: { ...broker, ca: 'ca.pem' } }, '/it/sinks/0/broker/ca', /mqtts/],
    [
      'a certificate without its key',
      { broker: { url: 'mqtts://broker', cert: 'c.pem' } },
      '/it/sinks/0/broker/key',
      /go together/,
    ],
    [
      'a password without a user',
      { broker: { ...broker, passwordFile: 'p' } },
      '/it/sinks/0/broker/username',
      /3\.1\.2\.9/,
    ],
    [
      'keepalive not in seconds',
      { broker: { ...broker, keepalive: '1500ms' } },
      '/it/sinks/0/broker/keepalive',
      /whole seconds/,
    ],
    ['a wildcard in the prefix', { broker, prefix: 'plant/+' }, '/it/sinks/0/prefix', /not a valid topic/],
    [
      'a wildcard in a mapping',
      { broker, topics: [{ from: 'press-7', to: 'plant/#' }] },
      '/it/sinks/0/topics/0/to',
      /not a valid topic/,
    ],
    [
      'one OT prefix mapped twice',
      {
        broker,
        topics: [
          { from: 'press-7', to: 'a' },
          { from: 'press-7', to: 'b' },
        ],
      },
      '/it/sinks/0/topics/1/from',
      /mapped at \/it\/sinks\/0\/topics\/0\/from/,
    ],
    [
      'an empty status prefix level',
      { broker, status: { prefix: 'dmz//status' } },
      '/it/sinks/0/status/prefix',
      /not a valid topic/,
    ],
    ['a window of no messages', { broker, inFlight: { messages: 0 } }, '/it/sinks/0/inFlight/messages', /./],
    [
      'a window of a few bytes',
      { broker, inFlight: { bytes: '1KiB' } },
      '/it/sinks/0/inFlight/bytes',
      /64KiB to 64MiB/,
    ],
    [
      'a Sparkplug group with a slash',
      { broker, sparkplug: { group: 'a/b' } },
      '/it/sinks/0/sparkplug/group',
      /Sparkplug/,
    ],
    ['Sparkplug without its group', { broker, sparkplug: {} }, '/it/sinks/0/sparkplug/group', /required/],
    [
      'retain with Sparkplug',
      { broker, sparkplug: { group: 'plant1' }, retain: true },
      '/it/sinks/0/retain',
      /does not apply with sparkplug/,
    ],
    [
      'status topics with Sparkplug',
      { broker, sparkplug: { group: 'plant1' }, status: { prefix: 'x' } },
      '/it/sinks/0/status',
      /births and deaths are the status/,
    ],
  ];
  for (const [name, sink, path, message] of BAD) {
    it(`refuses ${name}, naming ${path}`, () => {
      const issues = issuesOf(sink);
      const issue = issues.find((candidate) => candidate.path === path);
      assert.ok(issue !== undefined, `no issue at ${path}: ${JSON.stringify(issues)}`);
      assert.match(issue.message, message);
    });
  }

  it('lists every problem of a section at once', () => {
    const issues = issuesOf({
      broker: { url: 'mqtt://broker', ca: 'ca.pem' },
      prefix: 'a/+',
      inFlight: { bytes: 1 },
    });
    assert.deepEqual(issues.map((issue) => issue.path).sort(), [
      '/it/sinks/0/broker/ca',
      '/it/sinks/0/inFlight/bytes',
      '/it/sinks/0/prefix',
    ]);
  });
});

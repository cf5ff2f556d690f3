/**
 * The tunnel sections of agent.yaml: defaults filled, addresses parsed, and every mistake refused
 * with its key path (the agent's one validator, agents/runtime/config.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateAgentConfig } from '../../../agents/runtime/config.ts';
import { parseHostPort } from '../../../agents/tunnels/tunnel-config.ts';
import { ConfigError } from '../../../relay/protocol/errors.ts';

const common = { credentials: 'c', state: '/var/lib/a', relay: { url: 'wss://relay.example:8443/v1/agent' } };
const simulator = { type: 'simulator', name: 'line1', points: [{ name: 'temp', signal: 'sine' }] };
const ot = (services: unknown[]) => ({ ...common, ot: { sources: [simulator], services } });
const it_ = (tunnels: unknown[]) => ({ ...common, it: { tunnels } });

function issuesOf(input: unknown): Record<string, string> {
  try {
    validateAgentConfig(input, '/etc/dmz');
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return Object.fromEntries(error.issues.map((issue) => [issue.path, issue.message]));
  }
  assert.fail('configuration was accepted');
}

describe('tunnel config', () => {
  it('fills the defaults of a service and an entrance, loopback when only a port is given', () => {
    const otConfig = validateAgentConfig(ot([{ name: 'modbus', target: '192.168.10.5:502' }]), '/etc/dmz');
    assert.deepEqual(otConfig.ot?.services, [
      {
        name: 'modbus',
        target: { host: '192.168.10.5', port: 502 },
        allow: undefined,
        maxStreams: 16,
        maxStreamsPerPeer: 16,
        idleTimeoutMs: 300_000,
        connectTimeoutMs: 5_000,
        bytesPerSecond: undefined,
      },
    ]);
    const itConfig = validateAgentConfig(
      it_([
        { listen: 1502, to: 'plc-7/modbus' },
        { name: 'opc', listen: '[::1]:4840', to: 'plc-7/opcua' },
      ]),
      '/etc/dmz',
    );
    assert.deepEqual(itConfig.it?.tunnels, [
      { name: 'plc-7-modbus', listen: { host: '127.0.0.1', port: 1502 }, peer: 'plc-7', service: 'modbus' },
      { name: 'opc', listen: { host: '::1', port: 4840 }, peer: 'plc-7', service: 'opcua' },
    ]);
    assert.deepEqual(itConfig.it?.consume, [], 'an IT agent with tunnels only needs no consumers');
  });

  it('shares maxStreams among the agents an allowlist names, unless maxStreamsPerPeer says', () => {
    const perPeer = (settings: Record<string, unknown>) =>
      validateAgentConfig(ot([{ name: 'm', target: '10.0.0.1:502', ...settings }]), '/etc/dmz').ot
        ?.services[0]?.maxStreamsPerPeer;
    assert.equal(perPeer({ allow: ['scada'] }), 16, 'one agent listed keeps every stream');
    assert.equal(perPeer({ allow: ['scada', 'historian', 'eng'] }), 5);
    assert.equal(perPeer({ maxStreams: 2, allow: ['a', 'b', 'c'] }), 1, 'at least one stream each');
    assert.equal(perPeer({ allow: ['scada', 'historian'], maxStreamsPerPeer: 12 }), 12);
    assert.equal(perPeer({ maxStreams: 4, maxStreamsPerPeer: 4 }), 4);
  });

  const refused: [string, unknown, string, RegExp][] = [
    [
      'streams per IT agent past the service streams',
      ot([{ name: 'm', target: '10.0.0.1:502', maxStreams: 4, maxStreamsPerPeer: 5 }]),
      '/ot/services/0/maxStreamsPerPeer',
      /at most maxStreams \(4\)/,
    ],
    [
      'streams per IT agent past the default service streams',
      ot([{ name: 'm', target: '10.0.0.1:502', maxStreamsPerPeer: 17 }]),
      '/ot/services/0/maxStreamsPerPeer',
      /at most maxStreams \(16\)/,
    ],
    [
      'no stream per IT agent',
      ot([{ name: 'm', target: '10.0.0.1:502', maxStreamsPerPeer: 0 }]),
      '/ot/services/0/maxStreamsPerPeer',
      /greater or equal to 1/,
    ],
    [
      'a fraction of a stream per IT agent',
      ot([{ name: 'm', target: '10.0.0.1:502', maxStreamsPerPeer: 1.5 }]),
      '/ot/services/0/maxStreamsPerPeer',
      /integer/,
    ],
    [
      'a target without a port',
      ot([{ name: 'm', target: 'plc.local' }]),
      '/ot/services/0/target',
      /host:port/,
    ],
    ['a target port 0', ot([{ name: 'm', target: 'plc.local:0' }]), '/ot/services/0/target', /1-65535/],
    [
      'a target port past 65535',
      ot([{ name: 'm', target: '10.0.0.1:70000' }]),
      '/ot/services/0/target',
      /host:port/,
    ],
    [
      'a service name with a slash',
      ot([{ name: 'a/b', target: '10.0.0.1:502' }]),
      '/ot/services/0/name',
      /A-Za-z0-9_-/,
    ],
    [
      'two services of one name',
      ot([
        { name: 'm', target: '10.0.0.1:502' },
        { name: 'm', target: '10.0.0.2:502' },
      ]),
      '/ot/services/1/name',
      /another service/,
    ],
    [
      'an allowlist entry that is no agent name',
      ot([{ name: 'm', target: '10.0.0.1:502', allow: ['Not A Name'] }]),
      '/ot/services/0/allow/0',
      /agent name/,
    ],
    [
      'a connect timeout past 20 s',
      ot([{ name: 'm', target: '10.0.0.1:502', connectTimeout: '1m' }]),
      '/ot/services/0/connectTimeout',
      /20s/,
    ],
    [
      'an unknown key in a service',
      ot([{ name: 'm', target: '10.0.0.1:502', host: 'x' }]),
      '/ot/services/0/host',
      /.+/,
    ],
    [
      'an entrance to no service',
      it_([{ listen: 1502, to: 'plc-7' }]),
      '/it/tunnels/0/to',
      /<ot-agent>\/<service>/,
    ],
    [
      'an entrance to a filter',
      it_([{ listen: 1502, to: 'plc-7/+' }]),
      '/it/tunnels/0/to',
      /<ot-agent>\/<service>/,
    ],
    [
      'a listen address that is none',
      it_([{ listen: 'here', to: 'plc-7/m' }]),
      '/it/tunnels/0/listen',
      /port/,
    ],
    [
      'two entrances on one address',
      it_([
        { listen: 1502, to: 'plc-7/m' },
        { listen: '127.0.0.1:1502', to: 'plc-8/m' },
      ]),
      '/it/tunnels/1/listen',
      /another tunnel/,
    ],
    ['an IT section with neither consumers nor tunnels', { ...common, it: {} }, '/it', /consume or tunnels/],
  ];
  for (const [name, input, path, message] of refused) {
    it(`refuses ${name} at ${path}`, () => {
      const issues = issuesOf(input);
      assert.match(issues[path] ?? `(no issue at ${path}: ${JSON.stringify(issues)})`, message);
    });
  }

  it('parses host:port forms and refuses the rest', () => {
    assert.deepEqual(parseHostPort('plc.local:502'), { host: 'plc.local', port: 502 });
    assert.deepEqual(parseHostPort('[fd00::5]:502'), { host: 'fd00::5', port: 502 });
    for (const bad of ['fd00::5:502', '[not-v6]:502', ':502', 'plc:', 'plc:5x', 'a b:1']) {
      assert.equal(parseHostPort(bad), undefined, bad);
    }
  });
});

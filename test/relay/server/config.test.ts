import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, DmzError } from '../../../relay/protocol/errors.ts';
import { loadRelayConfig, validateRelayConfig } from '../../../relay/server/config.ts';

const minimal = { trustDomain: 'plant.example', state: './state' };

function issuesOf(input: unknown): { path: string; message: string }[] {
  try {
    validateRelayConfig(input, '/etc/dmz-relay');
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    assert.equal(error.code, 'CONFIG_ERR_INVALID');
    return [...error.issues];
  }
  assert.fail('configuration was accepted');
}

describe('relay config', () => {
  it('fills defaults, resolves paths against the config directory, and freezes the result', () => {
    const config = validateRelayConfig(minimal, '/etc/dmz-relay');
    assert.equal(config.state, '/etc/dmz-relay/state');
    assert.equal(config.listen.agents.port, 8443);
    assert.equal(config.listen.admin.host, '127.0.0.1');
    assert.equal(config.tls.handshakeTimeoutMs, 10_000);
    // One IT agent may hold an eighth of an OT agent's sessions, and only half its unanswered offers.
    assert.deepEqual(
      [
        config.limits.maxSessionsPerAgent,
        config.limits.maxSessionsPerPair,
        config.limits.maxPendingOffersPerAgent,
      ],
      [64, 8, 16],
    );
    assert.doesNotThrow(() =>
      validateRelayConfig({ ...minimal, limits: { maxSessionsPerAgent: 4, maxSessionsPerPair: 4 } }, '/'),
    );
    assert.deepEqual(config.policy, []);
    assert.ok(Object.isFrozen(config) && Object.isFrozen(config.limits) && Object.isFrozen(config.policy));
    assert.throws(() => {
      (config.limits as { maxFrameBytes: number }).maxFrameBytes = 1;
    }, TypeError);
  });

  const invalid: [string, unknown, string, RegExp][] = [
    ['not a mapping', 'hello', '', /mapping/],
    ['missing trust domain', { state: 's' }, '/trustDomain', /.+/],
    ['unknown top-level key', { ...minimal, polcy: [] }, '/polcy', /unknown key/],
    ['unknown nested key', { ...minimal, limits: { maxFrames: 1 } }, '/limits/maxFrames', /unknown key/],
    [
      'port out of range',
      { ...minimal, listen: { agents: { port: 70000 } } },
      '/listen/agents/port',
      /65535/,
    ],
    [
      'admin on a public address',
      { ...minimal, listen: { admin: { host: '0.0.0.0' } } },
      '/listen/admin/host',
      /loopback/,
    ],
    [
      'handshake timeout above 10 s',
      { ...minimal, tls: { handshakeTimeoutMs: 60_000 } },
      '/tls/handshakeTimeoutMs',
      /10000/,
    ],
    ['bad trust domain', { ...minimal, trustDomain: 'Plant Example' }, '/trustDomain', /DNS-like/],
    ['role not ot/it', { ...minimal, policy: [{ role: 'root' }] }, '/policy/0/role', /one of: ot, it/],
    [
      'rule with agent and role',
      { ...minimal, policy: [{ agent: 'a', role: 'it' }] },
      '/policy/0',
      /exactly one/,
    ],
    ['rule with neither', { ...minimal, policy: [{ subscribe: ['#'] }] }, '/policy/0', /exactly one/],
    ['bad agent name', { ...minimal, policy: [{ agent: 'Bad_Name' }] }, '/policy/0/agent', /agent name/],
    [
      'bad filter',
      { ...minimal, policy: [{ role: 'it', subscribe: ['a/#/b'] }] },
      '/policy/0/subscribe/0',
      /last segment/,
    ],
    [
      'dot-dot filter',
      { ...minimal, policy: [{ role: 'it', command: ['a/../b'] }] },
      '/policy/0/command/0',
      /\.\./,
    ],
    [
      'a one-level tunnel grant, which no <ot-agent>/<service> matches',
      { ...minimal, policy: [{ role: 'it', tunnel: ['press-7'] }] },
      '/policy/0/tunnel/0',
      /<ot-agent>\/<service>/,
    ],
    [
      'a three-level tunnel grant',
      { ...minimal, policy: [{ role: 'it', tunnel: ['press-7/modbus/x'] }] },
      '/policy/0/tunnel/0',
      /<ot-agent>\/<service>/,
    ],
    [
      'byte rate below frame size',
      { ...minimal, limits: { bytesPerSecond: 2048 } },
      '/limits/bytesPerSecond',
      /maxFrameBytes/,
    ],
    [
      'a per-pair session limit above the per-agent one',
      { ...minimal, limits: { maxSessionsPerAgent: 4, maxSessionsPerPair: 5 } },
      '/limits/maxSessionsPerPair',
      /maxSessionsPerAgent/,
    ],
    [
      'the default per-pair session limit above a lowered per-agent one',
      { ...minimal, limits: { maxSessionsPerAgent: 4 } },
      '/limits/maxSessionsPerPair',
      /maxSessionsPerAgent/,
    ],
    [
      'no pending offers at all',
      { ...minimal, limits: { maxPendingOffersPerAgent: 0 } },
      '/limits/maxPendingOffersPerAgent',
      /1/,
    ],
    ['wrong type', { ...minimal, sessions: { leaseMs: 'long' } }, '/sessions/leaseMs', /integer/i],
  ];
  for (const [name, input, path, message] of invalid) {
    it(`refuses ${name}, naming ${path || 'the root'}`, () => {
      const issue = issuesOf(input).find((candidate) => candidate.path === path);
      assert.ok(issue, `no issue at ${path}: ${JSON.stringify(issuesOf(input))}`);
      assert.match(issue.message, message);
    });
  }

  it('lists every problem at once, schema and semantic alike', () => {
    const issues = issuesOf({
      trustDomain: 'UPPER',
      state: 's',
      limits: { maxFrameBytes: 1 },
      policy: [{ role: 'it', subscribe: ['#/x'] }],
    });
    const paths = issues.map((issue) => issue.path).sort();
    assert.deepEqual(paths, ['/limits/maxFrameBytes', '/policy/0/subscribe/0', '/trustDomain']);
  });

  it('accepts tunnel grants that can match <ot-agent>/<service>', () => {
    const tunnel = ['press-7/modbus', 'press-7/+', '+/modbus', 'press-7/#', '#'];
    const config = validateRelayConfig({ ...minimal, policy: [{ role: 'it', tunnel }] }, '/');
    assert.deepEqual(config.policy[0]?.tunnel, tunnel);
  });

  it('accepts the shipped example configuration (deploy/relay.example.yaml)', async () => {
    const config = await loadRelayConfig(
      join(import.meta.dirname, '..', '..', '..', 'deploy', 'relay.example.yaml'),
    );
    assert.equal(config.listen.enrollment.mode, 'auto');
    assert.ok(config.policy.length > 0);
  });

  it('reads YAML files, refusing duplicate keys and unreadable files with clear codes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dmz-config-'));
    const good = join(dir, 'relay.yaml');
    await writeFile(good, 'trustDomain: plant.example\nstate: ./state\npolicy:\n  - role: ot\n');
    const config = await loadRelayConfig(good);
    assert.equal(config.state, join(dir, 'state'));
    assert.equal(config.policy[0]?.role, 'ot');

    const duplicate = join(dir, 'dup.yaml');
    await writeFile(duplicate, 'trustDomain: a.example\ntrustDomain: b.example\nstate: s\n');
    await assert.rejects(loadRelayConfig(duplicate), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /unique|duplicate/i);
      return true;
    });
    await assert.rejects(loadRelayConfig(join(dir, 'missing.yaml')), (error: unknown) => {
      assert.ok(error instanceof DmzError);
      assert.equal(error.code, 'CONFIG_ERR_UNREADABLE');
      return true;
    });
  });
});

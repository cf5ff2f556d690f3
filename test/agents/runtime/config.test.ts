import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import {
  checkConfigRole,
  loadAgentConfig,
  validateAgentConfig,
  type AgentConfig,
} from '../../../agents/runtime/config.ts';
import { ConfigError, DmzError, type ConfigIssue } from '../../../relay/protocol/errors.ts';

const BASE_DIR = '/etc/dmz';
const RELAY_URL = 'wss://relay.example:8443/v1/agent';
const common = { credentials: 'credentials', state: '/var/lib/dmz-agent', relay: { url: RELAY_URL } };
const simulator = { type: 'simulator', name: 'line1', points: [{ name: 'temp', signal: 'sine' }] };
const otConfig = { ...common, ot: { sources: [simulator] } };
const itConfig = {
  ...common,
  it: {
    sinks: [{ name: 'historian', type: 'jsonl', dir: 'historian' }],
    consume: [{ from: 'press-7', sink: 'historian' }],
  },
};

function issuesOf(input: unknown): ConfigIssue[] {
  try {
    validateAgentConfig(input, BASE_DIR);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `not a ConfigError: ${String(error)}`);
    assert.equal(error.code, 'CONFIG_ERR_INVALID');
    return [...error.issues];
  }
  assert.fail('configuration was accepted');
}

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'dmz-agent-config-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('agents/runtime config', () => {
  it('fills the defaults of an OT config, resolves paths against the base dir, and freezes it', () => {
    const config = validateAgentConfig({ ...otConfig, admin: { port: 9100 } }, BASE_DIR);
    assert.deepEqual(config, {
      credentials: '/etc/dmz/credentials',
      state: '/var/lib/dmz-agent',
      relay: { url: RELAY_URL, connectTimeoutMs: 10_000, reconnectBaseMs: 500, reconnectCapMs: 30_000 },
      admin: { host: '127.0.0.1', port: 9100 },
      log: { level: 'info' },
      ot: {
        log: { maxBytes: 1024 ** 3, maxAgeMs: 7 * 86_400_000, segmentBytes: 64 * 1024 ** 2 },
        sources: [{ ...simulator, interval: '1s', batch: 1, limit: 0 }],
        // Writes off: no point listed (agents/ot/writes/config.ts).
        writes: { maxWindowMs: 8 * 3600 * 1000, points: [] },
        // No tunnel services unless listed (agents/tunnels/).
        services: [],
      },
      it: undefined,
    });
    assert.ok(Object.isFrozen(config) && Object.isFrozen(config.relay));
    assert.ok(Object.isFrozen(config.ot?.sources[0]) && Object.isFrozen(config.ot?.log));
    assert.throws(() => {
      (config.relay as { url: string }).url = 'wss://elsewhere';
    }, TypeError);
  });

  it('fills the defaults of an IT config: consumer name and filter from `from`, sink dir resolved', () => {
    const config = validateAgentConfig(itConfig, BASE_DIR);
    assert.equal(config.ot, undefined);
    assert.equal(config.admin, undefined);
    assert.deepEqual(config.it, {
      sinks: [{ name: 'historian', type: 'jsonl', dir: '/etc/dmz/historian' }],
      consume: [
        { name: 'press-7', from: 'press-7', filter: 'press-7/#', sink: 'historian', replayWindow: 65_536 },
      ],
      tunnels: [],
      api: undefined,
    });
    assert.ok(Object.isFrozen(config.it?.consume[0]) && Object.isFrozen(config.it?.sinks));
  });

  it('keeps what is given over the defaults', () => {
    const config = validateAgentConfig(
      {
        ...common,
        relay: { url: RELAY_URL, connectTimeout: '3s', reconnectBase: '100ms', reconnectCap: '1m' },
        admin: { host: '::1', port: 0 },
        log: { level: 'debug' },
        ot: { log: { maxBytes: '2GiB', maxAge: '30d', segmentBytes: 1024 * 1024 }, sources: [simulator] },
      },
      BASE_DIR,
    );
    assert.deepEqual(config.relay, {
      url: RELAY_URL,
      connectTimeoutMs: 3000,
      reconnectBaseMs: 100,
      reconnectCapMs: 60_000,
    });
    assert.deepEqual(config.admin, { host: '::1', port: 0 });
    assert.equal(config.log.level, 'debug');
    assert.deepEqual(config.ot?.log, {
      maxBytes: 2 * 1024 ** 3,
      maxAgeMs: 30 * 86_400_000,
      segmentBytes: 1024 * 1024,
    });
  });

  it('takes an OT host that only carries tunnels: services and no sources', () => {
    const service = { name: 'modbus', target: '192.168.10.5:502' };
    for (const ot of [{ services: [service] }, { sources: [], services: [service] }]) {
      const config = validateAgentConfig({ ...common, ot }, BASE_DIR);
      assert.deepEqual(config.ot?.sources, []);
      assert.deepEqual(
        config.ot?.services.map(({ name, target }) => ({ name, target })),
        [{ name: 'modbus', target: { host: '192.168.10.5', port: 502 } }],
      );
    }
  });

  const ot = (fields: Record<string, unknown>) => ({ ...common, ot: { sources: [simulator], ...fields } });
  const otLog = (log: Record<string, unknown>) => ot({ log });
  const relay = (fields: Record<string, unknown>) => ({ ...common, relay: { url: RELAY_URL, ...fields } });
  const itSection = (fields: Record<string, unknown>) => ({ ...common, it: { ...itConfig.it, ...fields } });
  const consume = (fields: Record<string, unknown>) =>
    itSection({ consume: [{ from: 'press-7', sink: 'historian', ...fields }] });
  const sink = { name: 'historian', type: 'jsonl', dir: 'a' };

  // [case, input, every path expected, a message per path]
  const INVALID: [string, unknown, Record<string, RegExp>][] = [
    ['not a mapping', ['credentials'], { '': /mapping/ }],
    ['nothing at all', {}, { '/credentials': /required/, '/state': /required/, '/relay': /required/ }],
    ['an unknown top-level key', { ...otConfig, colour: 'red' }, { '/colour': /unknown key/ }],
    ['an unknown relay key', relay({ proxy: 'x' }), { '/relay/proxy': /unknown key/ }],
    ['an unknown admin key', { ...otConfig, admin: { port: 1, tls: true } }, { '/admin/tls': /unknown key/ }],
    [
      'an unknown log key',
      { ...otConfig, log: { level: 'info', file: 'x' } },
      { '/log/file': /unknown key/ },
    ],
    ['an unknown ot key', ot({ modbus: {} }), { '/ot/modbus': /unknown key/ }],
    ['an unknown ot.log key', otLog({ compress: true }), { '/ot/log/compress': /unknown key/ }],
    ['an unknown it key', itSection({ mqtt: {} }), { '/it/mqtt': /unknown key/ }],
    [
      'an unknown sink key',
      itSection({ sinks: [{ ...sink, name: 'historian', fsync: false }] }),
      { '/it/sinks/0/fsync': /unknown key/ },
    ],
    ['an unknown consumer key', consume({ qos: 1 }), { '/it/consume/0/qos': /unknown key/ }],
    ['a relay URL that is not a URL', relay({ url: 'relay:8443' }), { '/relay/url': /wss:\/\// }],
    [
      'a relay URL without TLS',
      relay({ url: 'ws://relay.example:8443/v1/agent' }),
      { '/relay/url': /wss:\/\// },
    ],
    ['an https relay URL', relay({ url: 'https://relay.example/v1/agent' }), { '/relay/url': /wss:\/\// }],
    ['a duration without a unit', relay({ connectTimeout: '10' }), { '/relay/connectTimeout': /like 500ms/ }],
    [
      'a connect timeout too short',
      relay({ connectTimeout: '50ms' }),
      { '/relay/connectTimeout': /from 100ms to 5m/ },
    ],
    [
      'a connect timeout too long',
      relay({ connectTimeout: '10m' }),
      { '/relay/connectTimeout': /from 100ms to 5m/ },
    ],
    [
      'a reconnect base too short',
      relay({ reconnectBase: '5ms' }),
      { '/relay/reconnectBase': /from 10ms to 1m/ },
    ],
    [
      'a reconnect base too long',
      relay({ reconnectBase: '2m', reconnectCap: '1h' }),
      { '/relay/reconnectBase': /from 10ms to 1m/ },
    ],
    // Only the key that is wrong: the base is not blamed for a cap that did not parse.
    [
      'a reconnect cap too long',
      relay({ reconnectCap: '2h' }),
      { '/relay/reconnectCap': /from 100ms to 1h/ },
    ],
    [
      'a reconnect cap that is no duration',
      relay({ reconnectCap: 'soon' }),
      { '/relay/reconnectCap': /like 500ms/ },
    ],
    [
      'reconnectBase above reconnectCap',
      relay({ reconnectBase: '40s', reconnectCap: '20s' }),
      { '/relay/reconnectBase': /must not exceed relay.reconnectCap/ },
    ],
    [
      'an admin host that is not loopback',
      { ...otConfig, admin: { host: '0.0.0.0', port: 9100 } },
      { '/admin/host': /loopback/ },
    ],
    [
      'an admin host by name',
      { ...otConfig, admin: { host: 'plant-pc', port: 9100 } },
      { '/admin/host': /loopback/ },
    ],
    ['an admin port out of range', { ...otConfig, admin: { port: 65_536 } }, { '/admin/port': /65535/ }],
    [
      'an admin section without a port',
      { ...otConfig, admin: { host: '127.0.0.1' } },
      { '/admin/port': /required/ },
    ],
    [
      'an unknown log level',
      { ...otConfig, log: { level: 'loud' } },
      { '/log/level': /one of: fatal, error, warn, info/ },
    ],
    [
      'a log budget below 64KiB',
      otLog({ maxBytes: 1000, segmentBytes: '64KiB' }),
      { '/ot/log/maxBytes': /at least 64KiB/ },
    ],
    // Only the key that is wrong: the default segment size is not blamed for a budget that did not parse.
    ['a log budget in decimal units', otLog({ maxBytes: '1GB' }), { '/ot/log/maxBytes': /like 64MiB/ }],
    [
      'a segment size below 64KiB',
      otLog({ segmentBytes: 4096 }),
      { '/ot/log/segmentBytes': /at least 64KiB/ },
    ],
    ['a log age below a minute', otLog({ maxAge: '30s' }), { '/ot/log/maxAge': /from 1m to 3650d/ }],
    ['a log age over ten years', otLog({ maxAge: '3651d' }), { '/ot/log/maxAge': /from 1m to 3650d/ }],
    [
      'segmentBytes above maxBytes/4',
      otLog({ maxBytes: '1MiB', segmentBytes: '512KiB' }),
      { '/ot/log/segmentBytes': /quarter of ot.log.maxBytes/ },
    ],
    ['no sources and no services', ot({ sources: [] }), { '/ot': /must have sources or services/ }],
    ['an empty ot section', { ...common, ot: {} }, { '/ot': /must have sources or services/ }],
    ['sources that are not a list', ot({ sources: 'simulator' }), { '/ot/sources': /array/ }],
    ['an ot section that is not a mapping', { ...common, ot: 5 }, { '/ot': /object/ }],
    [
      'an ot.log that is not a mapping',
      otLog('x' as unknown as Record<string, unknown>),
      { '/ot/log': /object/ },
    ],
    ['an it section that is not a mapping', { ...common, it: 'x' }, { '/it': /object/ }],
    ['sinks that are not a list', itSection({ sinks: 'x' }), { '/it/sinks': /array/ }],
    [
      'two sinks of one name',
      itSection({ sinks: [sink, { ...sink, dir: 'b' }] }),
      { '/it/sinks/1/name': /another sink/ },
    ],
    [
      'a sink of an unknown type',
      itSection({ sinks: [{ ...sink, type: 'kafka' }] }),
      { '/it/sinks/0/type': /jsonl/ },
    ],
    ['a consumer naming no sink', consume({ sink: 'archive' }), { '/it/consume/0/sink': /names no sink/ }],
    [
      'a consumer from a bad agent name',
      consume({ from: 'Press_7' }),
      { '/it/consume/0/from': /agent name/ },
    ],
    [
      'a consumer with a bad filter',
      consume({ filter: 'press-7/#/x' }),
      { '/it/consume/0/filter': /"#" must be the last/ },
    ],
    [
      'a consumer with an empty filter level',
      consume({ filter: 'press-7//x' }),
      { '/it/consume/0/filter': /empty segment/ },
    ],
    [
      'a replay window below one frame',
      consume({ replayWindow: 100 }),
      { '/it/consume/0/replayWindow': /4096/ },
    ],
    [
      'two consumers of one name',
      itSection({
        consume: [
          { from: 'press-7', sink: 'historian' },
          { from: 'press-8', name: 'press-7', sink: 'historian' },
        ],
      }),
      { '/it/consume/1/name': /another consumer/ },
    ],
    [
      'a source of an unknown type',
      ot({ sources: [{ type: 'profibus' }] }),
      { '/ot/sources/0/type': /one of: simulator/ },
    ],
    [
      'a source with a bad signal',
      ot({
        sources: [simulator, { ...simulator, name: 'line2', points: [{ name: 't', signal: 'square' }] }],
      }),
      { '/ot/sources/1/points/0/signal': /one of: sine, ramp/ },
    ],
    [
      'a source with an unknown key',
      ot({ sources: [{ ...simulator, colour: 'red' }] }),
      { '/ot/sources/0/colour': /unknown key/ },
    ],
    [
      'two sources of one name',
      ot({ sources: [simulator, { ...simulator, prefix: 'line2' }] }),
      { '/ot/sources/1/name': /already used at \/ot\/sources\/0\/name/ },
    ],
  ];
  for (const [name, input, expected] of INVALID) {
    it(`refuses ${name}, naming ${Object.keys(expected).join(', ') || 'the root'}`, () => {
      const issues = issuesOf(input);
      assert.deepEqual(
        [...new Set(issues.map((issue) => issue.path))].sort(),
        Object.keys(expected).sort(),
        `issues: ${JSON.stringify(issues)}`,
      );
      for (const [path, message] of Object.entries(expected)) {
        const issue = issues.find((found) => found.path === path && message.test(found.message));
        assert.ok(issue, `no issue at ${path} matching ${message}: ${JSON.stringify(issues)}`);
      }
    });
  }

  it('lists every problem of a config at once', () => {
    const issues = issuesOf({
      ...common,
      relay: { url: 'http://relay', reconnectBase: '40s', reconnectCap: '20s' },
      extra: 1,
      admin: { host: '10.0.0.1', port: 9100 },
      it: { sinks: [sink], consume: [{ from: 'press-7', sink: 'archive' }] },
    });
    assert.deepEqual(issues.map((issue) => issue.path).sort(), [
      '/admin/host',
      '/extra',
      '/it/consume/0/sink',
      '/relay/reconnectBase',
      '/relay/url',
    ]);
  });

  describe('checkConfigRole', () => {
    const ROLES: ['ot' | 'it', unknown, Record<string, RegExp>][] = [
      ['ot', itConfig, { '/it': /role ot; remove this section/, '/ot': /required/ }],
      ['it', otConfig, { '/ot': /role it; remove this section/, '/it': /required/ }],
      ['ot', common, { '/ot': /required: this agent's certificate is for role ot/ }],
      ['it', common, { '/it': /required: this agent's certificate is for role it/ }],
    ];
    for (const [role, input, expected] of ROLES) {
      it(`refuses a config with ${Object.keys(expected).join(' and ')} wrong for role ${role}`, () => {
        const config = validateAgentConfig(input, BASE_DIR);
        const error = assertThrowsConfigError(() => checkConfigRole(config, role, 'agent.yaml'));
        assert.equal(error.source, 'agent.yaml');
        assert.deepEqual(error.issues.map((issue) => issue.path).sort(), Object.keys(expected).sort());
        for (const issue of error.issues) assert.match(issue.message, expected[issue.path]!);
      });
    }

    it('accepts each role with its own section', () => {
      assert.doesNotThrow(() => checkConfigRole(validateAgentConfig(otConfig, BASE_DIR), 'ot', 'agent.yaml'));
      assert.doesNotThrow(() => checkConfigRole(validateAgentConfig(itConfig, BASE_DIR), 'it', 'agent.yaml'));
    });
  });

  describe('loadAgentConfig', () => {
    it('reads a YAML file and resolves paths against its directory', async (t) => {
      const dir = await tempDir(t);
      const file = join(dir, 'agent.yaml');
      await writeFile(
        file,
        [
          'credentials: ./credentials',
          'state: state',
          'relay:',
          `  url: ${RELAY_URL}`,
          'it:',
          '  sinks:',
          '    - { name: historian, type: jsonl, dir: ../historian }',
          '  consume:',
          '    - { from: press-7, sink: historian }',
          '',
        ].join('\n'),
      );
      const config: AgentConfig = await loadAgentConfig(file);
      assert.equal(config.credentials, join(dir, 'credentials'));
      assert.equal(config.state, join(dir, 'state'));
      const sink = config.it?.sinks[0];
      assert.equal(sink?.type === 'jsonl' ? sink.dir : undefined, join(dir, '..', 'historian'));
    });

    it('refuses a YAML file with a duplicate key, naming the file', async (t) => {
      const file = join(await tempDir(t), 'agent.yaml');
      await writeFile(file, `credentials: a\ncredentials: b\nstate: s\nrelay:\n  url: ${RELAY_URL}\n`);
      const error = await rejectsConfigError(loadAgentConfig(file));
      assert.equal(error.source, file);
      assert.ok(error.message.includes(file));
      assert.ok(
        error.issues.some((issue) => /YAML: .*unique/i.test(issue.message)),
        JSON.stringify(error.issues),
      );
    });

    it('refuses a file that validates badly with the key paths and the file named', async (t) => {
      const file = join(await tempDir(t), 'agent.yaml');
      await writeFile(file, `credentials: a\nstate: s\nrelay:\n  url: ws://relay\n`);
      const error = await rejectsConfigError(loadAgentConfig(file));
      assert.equal(error.source, file);
      assert.deepEqual(
        error.issues.map((issue) => issue.path),
        ['/relay/url'],
      );
    });

    it('refuses a world-writable agent.yaml, naming it and the chmod: anyone could open writes or tunnels', async (t) => {
      const file = join(await tempDir(t), 'agent.yaml');
      // JSON is YAML too.
      await writeFile(file, JSON.stringify(itConfig));
      await chmod(file, 0o666);
      await assert.rejects(loadAgentConfig(file), {
        code: 'CONFIG_ERR_PERMISSIONS',
        message: `${JSON.stringify(file)} can be changed by group or others (mode 0666): whoever writes it decides who may do what`,
        hint: `chmod go-w ${JSON.stringify(file)}`,
      });
      await chmod(file, 0o644);
      assert.equal(
        (await loadAgentConfig(file)).credentials,
        join(dirname(file), 'credentials'),
        'read once only its owner may write it',
      );
    });

    it('refuses a missing file with CONFIG_ERR_UNREADABLE, naming the path', async (t) => {
      const file = join(await tempDir(t), 'missing.yaml');
      await assert.rejects(loadAgentConfig(file), (error: unknown) => {
        assert.ok(error instanceof DmzError);
        assert.equal(error.code, 'CONFIG_ERR_UNREADABLE');
        assert.ok(error.message.includes(file), error.message);
        assert.match(error.hint ?? '', /--config/);
        return true;
      });
    });
  });
});

function assertThrowsConfigError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `not a ConfigError: ${String(error)}`);
    return error;
  }
  assert.fail('no error');
}

async function rejectsConfigError(promise: Promise<unknown>): Promise<ConfigError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ConfigError, `not a ConfigError: ${String(error)}`);
    assert.equal(error.code, 'CONFIG_ERR_INVALID');
    return error;
  }
  assert.fail('configuration was accepted');
}

/**
 * The OPC UA section as the agent config holds it: defaults, every refusal with its key path
 * (a table), and what createSource refuses before anything connects (no state directory, a
 * password file others can read, a certificate file that is none). No server, no node-opcua.
 */
import assert from 'node:assert/strict';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError } from '../../../../../relay/protocol/errors.ts';
import {
  checkSourceConfig,
  createSource,
  validateSourceConfig,
} from '../../../../../agents/ot/sources/registry.ts';
import { resolveOpcuaSettings, type OpcuaConfig } from '../../../../../agents/ot/sources/opcua/config.ts';
import { AGENT, makeTempDir } from './opcua-fixture.ts';

const item = { name: 'temp', nodeId: 'ns=2;s=Line1.Temperature' };

function section(fields: Record<string, unknown> = {}, items: unknown[] = [item]) {
  return { type: 'opcua', name: 'plc', endpoint: 'opc.tcp://10.0.0.7:4840', ...fields, items };
}

describe('opcua source config', () => {
  let temp: Awaited<ReturnType<typeof makeTempDir>>;
  before(async () => {
    temp = await makeTempDir('opcua-config-');
  });
  after(() => temp.remove());

  it('is secure by default: SignAndEncrypt with Basic256Sha256, anonymous, 1 s intervals, queue 10', () => {
    const config = validateSourceConfig(section()) as OpcuaConfig;
    const settings = resolveOpcuaSettings(config, AGENT);
    assert.deepEqual(
      {
        mode: settings.securityMode,
        policy: settings.securityPolicy,
        publishing: settings.publishingIntervalMs,
        reconnect: [settings.reconnectBaseMs, settings.reconnectCapMs],
        user: config.user,
      },
      {
        mode: 'SignAndEncrypt',
        policy: 'Basic256Sha256',
        publishing: 1000,
        reconnect: [1000, 20_000],
        user: undefined,
      },
    );
    assert.deepEqual(settings.items, [
      {
        name: 'temp',
        topic: `${AGENT}/plc/temp`,
        nodeId: 'ns=2;s=Line1.Temperature',
        samplingIntervalMs: 1000,
        queueSize: 10,
        unit: undefined,
      },
    ]);
    assert.ok(Object.isFrozen(config));
  });

  it('takes every key: mode None, a prefix, per-item sampling and queue, units, a local address', () => {
    const config = validateSourceConfig(
      section(
        {
          prefix: 'line1/opc',
          security: { mode: 'None' },
          localAddress: '10.0.1.5',
          samplingInterval: '250ms',
        },
        [
          { name: 'temp', nodeId: 'ns=2;s=T', samplingInterval: '100ms', queueSize: 1, unit: 'degC' },
          { name: 'count', nodeId: 'i=2258' },
          { name: 'guid', nodeId: 'ns=3;g=72962B91-FA75-4AE6-8D28-B404DC7DAF63' },
          { name: 'opaque', nodeId: 'ns=1;b=M/RbKBsRVkePCePcx24oRA==' },
        ],
      ),
    ) as OpcuaConfig;
    const settings = resolveOpcuaSettings(config, AGENT);
    assert.equal(settings.securityPolicy, 'None');
    assert.equal(settings.localAddress, '10.0.1.5');
    assert.deepEqual(
      settings.items.map((resolved) => [
        resolved.topic,
        resolved.samplingIntervalMs,
        resolved.queueSize,
        resolved.unit,
      ]),
      [
        [`${AGENT}/line1/opc/temp`, 100, 1, 'degC'],
        [`${AGENT}/line1/opc/count`, 250, 10, undefined],
        [`${AGENT}/line1/opc/guid`, 250, 10, undefined],
        [`${AGENT}/line1/opc/opaque`, 250, 10, undefined],
      ],
    );
  });

  const refusals: [string, Record<string, unknown>, unknown[] | undefined, string, RegExp][] = [
    [
      'an inline password',
      { user: { name: 'op', password: 'secret' } },
      undefined,
      '/user/password',
      /unknown key/,
    ],
    ['Basic128Rsa15', { security: { policy: 'Basic128Rsa15' } }, undefined, '/security/policy', /deprecated/],
    [
      'Basic256',
      { security: { mode: 'Sign', policy: 'Basic256' } },
      undefined,
      '/security/policy',
      /deprecated/,
    ],
    [
      'policy None with Sign',
      { security: { mode: 'Sign', policy: 'None' } },
      undefined,
      '/security/policy',
      /needs a policy/,
    ],
    [
      'a policy with mode None',
      { security: { mode: 'None', policy: 'Basic256Sha256' } },
      undefined,
      '/security/policy',
      /must be None/,
    ],
    [
      'an unknown policy',
      { security: { policy: 'Aes512' } },
      undefined,
      '/security/policy',
      /must be one of/,
    ],
    [
      'an unknown mode',
      { security: { mode: 'Encrypt' } },
      undefined,
      '/security/mode',
      /must be one of: None, Sign/,
    ],
    [
      'a password over None',
      { security: { mode: 'None' }, user: { name: 'op', passwordFile: '/etc/pw' } },
      undefined,
      '/user',
      /unsecured channel/,
    ],
    [
      'a relative password file',
      { user: { name: 'op', passwordFile: 'pw' } },
      undefined,
      '/user/passwordFile',
      /absolute/,
    ],
    [
      'a certificate with None',
      { security: { mode: 'None', serverCertificate: '/etc/s.der' } },
      undefined,
      '/security/serverCertificate',
      /Sign and SignAndEncrypt only/,
    ],
    [
      'a relative certificate',
      { security: { serverCertificate: 'server.der' } },
      undefined,
      '/security/serverCertificate',
      /absolute/,
    ],
    ['an http endpoint', { endpoint: 'http://10.0.0.7:4840' }, undefined, '/endpoint', /opc\.tcp:\/\//],
    [
      'credentials in the URL',
      { endpoint: 'opc.tcp://op:secret@10.0.0.7:4840' },
      undefined,
      '/endpoint',
      /must not hold credentials/,
    ],
    ['a host name as local address', { localAddress: 'eth1' }, undefined, '/localAddress', /IPv4 or IPv6/],
    [
      'a 5 ms publishing interval',
      { publishingInterval: '5ms' },
      undefined,
      '/publishingInterval',
      /from 10ms to 1h/,
    ],
    [
      'reconnectBase above reconnectCap',
      { reconnectBase: '1m', reconnectCap: '10s' },
      undefined,
      '/reconnectBase',
      /must not exceed/,
    ],
    ['no items', {}, [], '/items', /greater or equal to 1/],
    ['a bad node id', {}, [{ name: 't', nodeId: 'Line1.Temperature' }], '/items/0/nodeId', /node id such as/],
    ['a numeric id past UInt32', {}, [{ name: 't', nodeId: 'i=4294967296' }], '/items/0/nodeId', /node id/],
    ['a namespace past 65535', {}, [{ name: 't', nodeId: 'ns=70000;i=1' }], '/items/0/nodeId', /node id/],
    ['a name with a slash', {}, [{ name: 'a/b', nodeId: 'i=1' }], '/items/0/name', /one topic segment/],
    [
      'a name twice',
      {},
      [item, { ...item, nodeId: 'i=1' }],
      '/items/1/name',
      /already used at \/ot\/sources\/0\/items\/0\/name/,
    ],
    ['a queue of 0', {}, [{ ...item, queueSize: 0 }], '/items/0/queueSize', /./],
    [
      'a 1 ms sampling interval',
      {},
      [{ ...item, samplingInterval: '1ms' }],
      '/items/0/samplingInterval',
      /from 10ms/,
    ],
  ];
  for (const [what, fields, items, path, message] of refusals) {
    it(`refuses ${what} at ${path}`, () => {
      const issues = checkSourceConfig(section(fields, items ?? [item]), '/ot/sources/0');
      const issue = issues.find((candidate) => candidate.path === `/ot/sources/0${path}`);
      assert.ok(issue !== undefined, `an issue at ${path}; got ${JSON.stringify(issues)}`);
      assert.match(issue.message, message);
    });
  }

  it('createSource refuses, by key path, what can only be known on this host', async () => {
    const openPassword = join(temp.dir, 'open-password');
    await writeFile(openPassword, 'secret\n');
    await chmod(openPassword, 0o644);
    const notACertificate = join(temp.dir, 'server.der');
    await writeFile(notACertificate, 'hello');
    const config = validateSourceConfig(
      section({
        security: { serverCertificate: notACertificate },
        user: { name: 'op', passwordFile: openPassword },
      }),
    );
    const error = assertConfigError(() =>
      createSource(config, { agentName: AGENT, configPath: '/ot/sources/3' }),
    );
    assert.deepEqual(
      error.issues.map((issue) => issue.path),
      ['/ot/sources/3', '/ot/sources/3/user/passwordFile', '/ot/sources/3/security/serverCertificate'],
    );
    assert.match(error.issues[0]?.message ?? '', /needs a state directory/);
    assert.match(error.issues[1]?.message ?? '', /open to group or others; make it the owner's alone/);
    assert.match(error.issues[2]?.message ?? '', /holds no PEM or DER certificate/);

    const missing = validateSourceConfig(
      section({ user: { name: 'op', passwordFile: join(temp.dir, 'none') } }),
    );
    const missingError = assertConfigError(() =>
      createSource(missing, { agentName: AGENT, stateDir: temp.dir }),
    );
    assert.match(missingError.issues[0]?.message ?? '', /does not exist/);
  });

  it('createSource refuses a pinned server certificate another user could replace, naming the chmod', async () => {
    const pin = join(temp.dir, 'open-server.der');
    await writeFile(pin, 'hello');
    await chmod(pin, 0o666);
    const config = validateSourceConfig(section({ security: { serverCertificate: pin } }));
    const error = assertConfigError(() => createSource(config, { agentName: AGENT, stateDir: temp.dir }));
    assert.deepEqual(error.issues, [
      {
        path: '/security/serverCertificate',
        message: `${JSON.stringify(pin)} can be changed by group or others (mode 0666): whoever writes it decides who may do what; chmod go-w ${JSON.stringify(pin)}`,
      },
    ]);
  });

  it('a topic that does not fit under the agent name is refused at creation', () => {
    // Fits the section's own bound (256 bytes for prefix/name), not once the agent's name is before it.
    const prefix = Array.from({ length: 4 }, () => 'a'.repeat(60)).join('/');
    const long = validateSourceConfig(section({ prefix }));
    const error = assertConfigError(() =>
      createSource(long, { agentName: 'x'.repeat(63), stateDir: temp.dir }),
    );
    assert.equal(error.issues[0]?.path, '/items/0/name');
  });
});

function assertConfigError(make: () => unknown): ConfigError {
  try {
    make();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `a ConfigError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected a ConfigError');
}

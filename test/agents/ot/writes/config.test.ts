import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { validateAgentConfig } from '../../../../agents/runtime/config.ts';
import { ConfigError, type ConfigIssue } from '../../../../relay/protocol/errors.ts';
import { makeKey } from './write-fixture.ts';

const BASE_DIR = '/etc/dmz';
const modbus = {
  type: 'modbus',
  name: 'line1',
  devices: [
    {
      host: '127.0.0.1',
      points: [
        { name: 'setpoint', table: 'holding', address: 10, type: 'int16' },
        { name: 'flag', table: 'holding', address: 11, type: 'bit', bit: 3 },
        { name: 'temp', table: 'input', address: 0 },
        { name: 'running', table: 'discrete', address: 0 },
        { name: 'start', table: 'coil', address: 0 },
        { name: 'recipe', table: 'holding', address: 20, type: 'string', length: 4 },
      ],
    },
  ],
};
const simulator = { type: 'simulator', name: 'sim', points: [{ name: 'temp', signal: 'sine' }] };

function config(points: unknown[], extra: Record<string, unknown> = {}) {
  return {
    credentials: 'credentials',
    state: '/var/lib/dmz-agent',
    relay: { url: 'wss://relay.example:8443/v1/agent' },
    ot: { sources: [modbus, simulator], writes: { points, ...extra } },
  };
}

const setpoint = { point: 'line1/setpoint', type: 'number', min: 0, max: 100, writers: ['hmi-1'] };

function issuesOf(input: unknown, baseDir = BASE_DIR): ConfigIssue[] {
  try {
    validateAgentConfig(input, baseDir);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `not a ConfigError: ${String(error)}`);
    return [...error.issues];
  }
  assert.fail('configuration was accepted');
}

describe('agent config: ot.writes', () => {
  it('is off by default: no points are writable', () => {
    const resolved = validateAgentConfig(config([]), BASE_DIR);
    assert.deepEqual(resolved.ot?.writes.points, []);
    const none = validateAgentConfig({ ...config([]), ot: { sources: [simulator] } }, BASE_DIR);
    assert.deepEqual(none.ot?.writes.points, []);
    assert.equal(none.ot?.writes.maxWindowMs, 8 * 3600 * 1000);
  });

  it('resolves a pinned key to its JWK and RFC 7638 thumbprint', () => {
    const key = makeKey();
    const resolved = validateAgentConfig(
      config([{ ...setpoint, signedBy: [{ agent: 'hmi-1', jwk: key.jwk }] }]),
      BASE_DIR,
    );
    assert.deepEqual(resolved.ot?.writes.points[0]?.signedBy, [
      { agent: 'hmi-1', jwk: key.jwk, kid: key.kid },
    ]);
  });

  it('reads a key file relative to the config, PEM or JWK', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dmz-writes-config-'));
    try {
      const { publicKey } = generateKeyPairSync('ed25519');
      await writeFile(join(dir, 'hmi-1.pem'), publicKey.export({ format: 'pem', type: 'spki' }));
      await writeFile(join(dir, 'hmi-2.jwk'), JSON.stringify(makeKey().jwk));
      const resolved = validateAgentConfig(
        config([
          {
            ...setpoint,
            writers: ['hmi-1', 'hmi-2'],
            signedBy: [
              { agent: 'hmi-1', file: 'hmi-1.pem' },
              { agent: 'hmi-2', file: 'hmi-2.jwk' },
            ],
          },
        ]),
        dir,
      );
      assert.equal(resolved.ot?.writes.points[0]?.signedBy.length, 2);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a pinned key file others may write, naming the key path, the file and the chmod', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dmz-writes-config-'));
    try {
      const file = join(dir, 'hmi-1.jwk');
      await writeFile(file, JSON.stringify(makeKey().jwk));
      // Whoever could replace the pin could sign writes as hmi-1.
      await chmod(file, 0o666);
      const points = [{ ...setpoint, signedBy: [{ agent: 'hmi-1', file: 'hmi-1.jwk' }] }];
      assert.deepEqual(issuesOf(config(points), dir), [
        {
          path: '/ot/writes/points/0/signedBy/0/file',
          message: `${JSON.stringify(file)} can be changed by group or others (mode 0666): whoever writes it decides who may do what (chmod go-w ${JSON.stringify(file)})`,
        },
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  const { privateKey } = generateKeyPairSync('ed25519');
  const { publicKey: rsaKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const cases: {
    name: string;
    points: unknown[];
    extra?: Record<string, unknown>;
    path: string;
    message: RegExp;
  }[] = [
    {
      name: 'a point of no source',
      points: [{ ...setpoint, point: 'line1/nothing' }],
      path: '/ot/writes/points/0/point',
      message: /no point of any source/,
    },
    {
      name: 'an input register',
      points: [{ ...setpoint, point: 'line1/temp' }],
      path: '/ot/writes/points/0/point',
      message: /read-only input table/,
    },
    {
      name: 'a discrete input',
      points: [{ ...setpoint, point: 'line1/running', type: 'boolean', min: undefined, max: undefined }],
      path: '/ot/writes/points/0/point',
      message: /read-only discrete table/,
    },
    {
      name: 'a bit inside a register',
      points: [{ ...setpoint, point: 'line1/flag', type: 'boolean', min: undefined, max: undefined }],
      path: '/ot/writes/points/0/point',
      message: /bit inside a register/,
    },
    {
      name: 'a coil written as a number',
      points: [{ ...setpoint, point: 'line1/start' }],
      path: '/ot/writes/points/0/point',
      message: /takes a boolean/,
    },
    {
      name: 'a source that takes no writes',
      points: [{ ...setpoint, point: 'sim/temp' }],
      path: '/ot/writes/points/0/point',
      message: /simulator takes no writes/,
    },
    {
      name: 'a number without a range',
      points: [{ ...setpoint, min: undefined }],
      path: '/ot/writes/points/0',
      message: /needs min and max/,
    },
    {
      name: 'min above max',
      points: [{ ...setpoint, min: 10, max: 5 }],
      path: '/ot/writes/points/0/min',
      message: /must not exceed max/,
    },
    {
      name: 'allowed values of another type',
      points: [{ point: 'line1/recipe', type: 'string', values: ['A', 3], writers: ['hmi-1'] }],
      path: '/ot/writes/points/0/values/1',
      message: /must be a string/,
    },
    {
      name: 'a writer that is no agent name',
      points: [{ ...setpoint, writers: ['HMI 1'] }],
      path: '/ot/writes/points/0/writers/0',
      message: /agent name/,
    },
    {
      name: 'a point listed twice',
      points: [setpoint, setpoint],
      path: '/ot/writes/points/1/point',
      message: /listed already/,
    },
    {
      name: 'a key of an agent that is no writer',
      points: [
        {
          ...setpoint,
          signedBy: [
            { agent: 'hmi-1', jwk: makeKey().jwk },
            { agent: 'hmi-9', jwk: makeKey().jwk },
          ],
        },
      ],
      path: '/ot/writes/points/0/signedBy/1/agent',
      message: /not one of the writers/,
    },
    {
      name: 'a writer without a key',
      points: [
        { ...setpoint, writers: ['hmi-1', 'hmi-2'], signedBy: [{ agent: 'hmi-1', jwk: makeKey().jwk }] },
      ],
      path: '/ot/writes/points/0/signedBy',
      message: /no key for writer hmi-2/,
    },
    {
      name: 'a private key',
      points: [
        {
          ...setpoint,
          signedBy: [{ agent: 'hmi-1', pem: privateKey.export({ format: 'pem', type: 'pkcs8' }) }],
        },
      ],
      path: '/ot/writes/points/0/signedBy/0/pem',
      message: /private key/,
    },
    {
      name: 'an RSA key',
      points: [
        { ...setpoint, signedBy: [{ agent: 'hmi-1', pem: rsaKey.export({ format: 'pem', type: 'spki' }) }] },
      ],
      path: '/ot/writes/points/0/signedBy/0/pem',
      message: /rsa key, not Ed25519/,
    },
    {
      name: 'a key both inline and in a file',
      points: [{ ...setpoint, signedBy: [{ agent: 'hmi-1', jwk: makeKey().jwk, file: 'k.pem' }] }],
      path: '/ot/writes/points/0/signedBy/0',
      message: /exactly one of pem, jwk or file/,
    },
    {
      name: 'a missing key file',
      points: [{ ...setpoint, signedBy: [{ agent: 'hmi-1', file: 'nowhere.pem' }] }],
      path: '/ot/writes/points/0/signedBy/0/file',
      message: /not an Ed25519 public key/,
    },
    {
      name: 'a window longer than 12h',
      points: [],
      extra: { maxWindow: '1d' },
      path: '/ot/writes/maxWindow',
      message: /from 1m to 12h/,
    },
    {
      name: 'an unknown key',
      points: [{ ...setpoint, writer: 'hmi-1' }],
      path: '/ot/writes/points/0/writer',
      message: /./,
    },
  ];

  for (const { name, points, extra, path, message } of cases) {
    it(`refuses ${name}, naming the key path`, () => {
      const issue = issuesOf(config(points, extra)).find((candidate) => candidate.path === path);
      assert.ok(issue !== undefined, `an issue at ${path}`);
      assert.match(issue.message, message);
    });
  }
});

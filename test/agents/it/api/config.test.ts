/**
 * The it.api section and the recent sink in agent.yaml: defaults, and every problem refused with
 * its key path (agents/runtime/config.ts, agents/it/api/api-config.ts, sinks/recent-config.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_STREAMS_PER_USER, MAX_STREAMS } from '../../../../agents/it/api/api-config.ts';
import { validateAgentConfig } from '../../../../agents/runtime/config.ts';
import { ConfigError } from '../../../../relay/protocol/errors.ts';

const base = (it_: Record<string, unknown>) => ({
  credentials: 'credentials',
  state: '/var/lib/dmz-agent',
  relay: { url: 'wss://relay.example:8443/v1/agent' },
  it: {
    sinks: [{ name: 'recent', type: 'recent' }],
    consume: [{ from: 'press-7', sink: 'recent' }],
    ...it_,
  },
});

function issues(input: unknown): Record<string, string> {
  try {
    validateAgentConfig(input, '/etc/dmz');
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return Object.fromEntries(error.issues.map((issue) => [issue.path, issue.message]));
  }
  assert.fail('accepted');
}

describe('agents/it/api - configuration', () => {
  it('fills the defaults: loopback port 8080, the only recent sink, no TLS or auth; the store under state', () => {
    const config = validateAgentConfig(base({ api: {} }), '/etc/dmz');
    assert.deepEqual(config.it?.api, {
      listen: { host: '127.0.0.1', port: 8080 },
      store: 'recent',
      tls: undefined,
      users: undefined,
      maxStreamsPerUser: DEFAULT_STREAMS_PER_USER,
      units: [],
      writable: [],
    });
    assert.deepEqual(config.it?.sinks[0], {
      name: 'recent',
      type: 'recent',
      dir: '/var/lib/dmz-agent/sinks/recent',
      historyPerTopic: 600,
      historyEntries: 1_000_000,
      maxAgeMs: 3_600_000,
      snapshotIntervalMs: 10_000,
    });
  });

  it('resolves the secret and TLS files against the config directory', () => {
    const config = validateAgentConfig(
      base({
        api: {
          tls: { cert: 'api.pem', key: 'api.key' },
          auth: { basic: { user: 'ops', passwordFile: 'pw' } },
        },
      }),
      '/etc/dmz',
    );
    assert.deepEqual(config.it?.api?.tls, { cert: '/etc/dmz/api.pem', key: '/etc/dmz/api.key' });
    assert.deepEqual(config.it?.api?.users, [
      {
        name: 'ops',
        role: 'write',
        token: undefined,
        password: { file: '/etc/dmz/pw', key: 'it.api.auth.basic.passwordFile', hashed: false },
      },
    ]);
  });

  it('resolves it.api.users: each user with its role and its files against the config directory', () => {
    const config = validateAgentConfig(
      base({
        api: {
          users: [
            { name: 'ada', role: 'write', passwordHashFile: 'users/ada.scrypt', tokenFile: '/t/ada' },
            { name: 'scada@mes', role: 'read', tokenFile: 'users/scada.token' },
          ],
        },
      }),
      '/etc/dmz',
    );
    assert.deepEqual(config.it?.api?.users, [
      {
        name: 'ada',
        role: 'write',
        token: { file: '/t/ada', key: 'it.api.users[0].tokenFile' },
        password: {
          file: '/etc/dmz/users/ada.scrypt',
          key: 'it.api.users[0].passwordHashFile',
          hashed: true,
        },
      },
      {
        name: 'scada@mes',
        role: 'read',
        token: { file: '/etc/dmz/users/scada.token', key: 'it.api.users[1].tokenFile' },
        password: undefined,
      },
    ]);
  });

  it('takes a listener off loopback with TLS and users', () => {
    const config = validateAgentConfig(
      base({
        api: {
          listen: { host: '0.0.0.0' },
          tls: { cert: 'c', key: 'k' },
          users: [{ name: 'ada', role: 'read', tokenFile: 't' }],
        },
      }),
      '/etc/dmz',
    );
    assert.equal(config.it?.api?.listen.host, '0.0.0.0');
  });

  it('takes writable points with a user of role write: a named one, or the shared secret of earlier versions', () => {
    const writable = [{ filter: 'press-7/plc/speed', type: 'number' }];
    for (const access of [
      { users: [{ name: 'ada', role: 'write', tokenFile: 't' }] },
      { auth: { bearerTokenFile: 't' } },
    ]) {
      const config = validateAgentConfig(base({ api: { ...access, writable } }), '/etc/dmz');
      assert.deepEqual(config.it?.api?.writable, writable);
    }
  });

  const refusals: [string, Record<string, unknown>, string, RegExp][] = [
    [
      'writable points without users: no one could write them',
      { api: { writable: [{ filter: 'press-7/plc/speed', type: 'number' }] } },
      '/it/api/writable',
      /^it\.api\.writable needs a user of role write in it\.api\.users/,
    ],
    [
      'writable points with users of role read alone',
      {
        api: {
          users: [{ name: 'ben', role: 'read', tokenFile: 't' }],
          writable: [{ filter: 'press-7/plc/speed', type: 'number' }],
        },
      },
      '/it/api/writable',
      /^it\.api\.writable needs a user of role write in it\.api\.users/,
    ],
    [
      'users and the shared secret together',
      {
        api: {
          users: [{ name: 'ada', role: 'read', tokenFile: 't' }],
          auth: { bearerTokenFile: 't2' },
        },
      },
      '/it/api/auth',
      /it.api.users or it.api.auth, not both/,
    ],
    [
      'a user without a credential',
      { api: { users: [{ name: 'ada', role: 'read' }] } },
      '/it/api/users/0',
      /needs a credential: tokenFile, passwordHashFile or both/,
    ],
    [
      'two users of one name',
      {
        api: {
          users: [
            { name: 'ada', role: 'read', tokenFile: 't' },
            { name: 'ada', role: 'write', tokenFile: 't2' },
          ],
        },
      },
      '/it/api/users/1/name',
      /names ada a second time/,
    ],
    [
      'a user of an unknown role',
      { api: { users: [{ name: 'ada', role: 'admin', tokenFile: 't' }] } },
      '/it/api/users/0/role',
      /read, write/,
    ],
    [
      'a user name with a colon',
      { api: { users: [{ name: 'ada:x', role: 'read', tokenFile: 't' }] } },
      '/it/api/users/0/name',
      /Expected string to match/,
    ],
    [
      'a plain password in a user',
      { api: { users: [{ name: 'ada', role: 'read', password: 'secret12' }] } },
      '/it/api/users/0/password',
      /unknown key/,
    ],
    ['an empty user list', { api: { users: [] } }, '/it/api/users', /greater or equal to 1/],
    [
      'a listener off loopback with users but no TLS',
      { api: { listen: { host: '10.0.0.5' }, users: [{ name: 'ada', role: 'read', tokenFile: 't' }] } },
      '/it/api/listen/host',
      /needs it.api.tls and it.api.users/,
    ],
    [
      'a listener off loopback without TLS and auth',
      { api: { listen: { host: '0.0.0.0' } } },
      '/it/api/listen/host',
      /needs it.api.tls and it.api.users/,
    ],
    [
      'a listener off loopback with auth but no TLS',
      { api: { listen: { host: '10.0.0.5' }, auth: { bearerTokenFile: 't' } } },
      '/it/api/listen/host',
      /needs it.api.tls/,
    ],
    [
      'an API without a recent sink',
      {
        sinks: [{ name: 'files', type: 'jsonl', dir: 'x' }],
        consume: [{ from: 'press-7', sink: 'files' }],
        api: {},
      },
      '/it/api/store',
      /sink of type recent/,
    ],
    [
      'a store naming another sink',
      { api: { store: 'files' } },
      '/it/api/store',
      /names no sink of type recent/,
    ],
    ['an unknown API key', { api: { cors: true } }, '/it/api/cors', /unknown key/],
    [
      'no live stream for a user',
      { api: { maxStreamsPerUser: 0 } },
      '/it/api/maxStreamsPerUser',
      /greater or equal to 1$/,
    ],
    [
      "more streams for a user than the API's for everyone",
      { api: { maxStreamsPerUser: MAX_STREAMS + 1 } },
      '/it/api/maxStreamsPerUser',
      new RegExp(`less or equal to ${MAX_STREAMS}$`),
    ],
    [
      'streams per user that are not a whole number',
      { api: { maxStreamsPerUser: '8 streams' } },
      '/it/api/maxStreamsPerUser',
      /integer/,
    ],
    [
      'a unit filter that is not one',
      { api: { units: [{ filter: 'a/#/b', unit: 'degC' }] } },
      '/it/api/units/0/filter',
      /#/,
    ],
    [
      'a writable entry of an unknown type',
      { api: { writable: [{ filter: 'a/b', type: 'float' }] } },
      '/it/api/writable/0/type',
      /number, boolean, string/,
    ],
    [
      'a basic user with a colon',
      { api: { auth: { basic: { user: 'a:b', passwordFile: 'p' } } } },
      '/it/api/auth',
      /union/i,
    ],
    [
      'a recent sink with an unknown key',
      { sinks: [{ name: 'recent', type: 'recent', size: 5 }] },
      '/it/sinks/0/size',
      /unknown key/,
    ],
    [
      'a recent sink kept too briefly',
      { sinks: [{ name: 'recent', type: 'recent', maxAge: '5s' }] },
      '/it/sinks/0/maxAge',
      /from 1m/,
    ],
    [
      'a recent sink keeping too much',
      { sinks: [{ name: 'recent', type: 'recent', historyPerTopic: 100_000 }] },
      '/it/sinks/0/historyPerTopic',
      /10000/,
    ],
    [
      'a recent sink with no store-wide history',
      { sinks: [{ name: 'recent', type: 'recent', historyEntries: 0 }] },
      '/it/sinks/0/historyEntries',
      /greater or equal to 1$/,
    ],
    [
      'a recent sink keeping too much across its topics',
      { sinks: [{ name: 'recent', type: 'recent', historyEntries: 20_000_000 }] },
      '/it/sinks/0/historyEntries',
      /10000000/,
    ],
  ];
  for (const [what, section, path, message] of refusals) {
    it(`refuses ${what}, naming ${path}`, () => {
      const found = issues(base(section));
      assert.ok(path in found, JSON.stringify(found));
      assert.match(found[path] ?? '', message);
    });
  }
});

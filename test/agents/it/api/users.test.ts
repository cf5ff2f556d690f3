/**
 * Named API users with roles (IEC 62443-3-3 SR 1.1 RE 1, SR 2.1), with the real agent, relay and
 * Modbus device: every role against every route, each credential kind; wrong names and
 * passwords; who asked for each write, in the IT agent's own audit and joined by its nonce to the
 * OT agent's; a user removed from the configuration refused after a restart; credential files that
 * must stop the agent at start, naming their key path.
 */
import assert from 'node:assert/strict';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MAX_FAILED_ATTEMPTS_PER_MINUTE } from '../../../../agents/it/api/auth.ts';
import { API_ROUTES } from '../../../../agents/it/api/routes.ts';
import { AUDIT_FILE } from '../../../../agents/ot/writes/audit-log.ts';
import { writesDir } from '../../../../agents/ot/writes/write-window.ts';
import { API_AUDIT_DIR } from '../../../../agents/it/write-audit.ts';
import type { Agent } from '../../../../agents/runtime/agent.ts';
import { DmzError } from '../../../../relay/protocol/errors.ts';
import {
  addApiUser,
  basicAuth,
  createApiPlant,
  IT,
  OT,
  openStream,
  readAudit,
  REGISTERS,
  request,
  SPEED,
  TEMP,
  waitForValues,
  type ApiPlant,
  type ApiUserEntry,
} from './api-plant.ts';

const PASSWORDS = { ada: 'ada lovelace 1815', ben: 'ben franklin 1706' } as const;

describe('agents/it/api - named users with roles', () => {
  let plant: ApiPlant;
  let users: Record<'ada' | 'ben' | 'scada' | 'mes', ApiUserEntry>;
  let tokens: Record<'ada' | 'scada' | 'mes', string>;
  let agent: Agent;
  let itState: string;
  const itAudit = () => readAudit(join(itState, API_AUDIT_DIR, AUDIT_FILE));
  const otAudit = () => readAudit(join(writesDir(`${plant.plant.dir}/ot-state`), AUDIT_FILE));
  const start = (list: readonly ApiUserEntry[], dir = itState) =>
    plant.startIt({ users: list, writable: [{ filter: `${OT}/plc/+`, type: 'number' }] }, { dir });

  before(async () => {
    plant = await createApiPlant({
      writes: { points: [{ point: 'plc/speed', type: 'number', min: 0, max: 120, writers: [IT] }] },
    });
    const dir = join(plant.plant.dir, 'api-users');
    await mkdir(dir, { mode: 0o700 });
    users = {
      ada: await addApiUser(dir, 'ada', 'write', { password: PASSWORDS.ada, token: true }),
      ben: await addApiUser(dir, 'ben', 'read', { password: PASSWORDS.ben }),
      scada: await addApiUser(dir, 'scada', 'read', { token: true }),
      mes: await addApiUser(dir, 'mes', 'write', { token: true }),
    };
    const tokenOf = async (entry: ApiUserEntry) => (await readFile(entry.tokenFile!, 'utf8')).trim();
    tokens = {
      ada: await tokenOf(users.ada),
      scada: await tokenOf(users.scada),
      mes: await tokenOf(users.mes),
    };
    itState = `${plant.plant.dir}/it-users-state`;
    agent = await start(Object.values(users));
    await waitForValues(agent.api!.url, [TEMP, SPEED], { authorization: `Bearer ${tokens.scada}` });
  });
  after(() => plant.close());

  // One request per route, so that a route added without a case here fails the test below.
  let nextValue = 10;
  const CASES: Readonly<Record<string, (base: string, headers: Record<string, string>) => Promise<number>>> =
    {
      listPoints: async (base, headers) => (await request(`${base}api/v1/points`, { headers })).status,
      getPoint: async (base, headers) => (await request(`${base}api/v1/points/${TEMP}`, { headers })).status,
      readPoints: async (base, headers) =>
        (
          await request(`${base}api/v1/points/read`, {
            method: 'POST',
            headers: { ...headers, 'content-type': 'application/json' },
            body: JSON.stringify({ topics: [TEMP] }),
          })
        ).status,
      getHistory: async (base, headers) =>
        (await request(`${base}api/v1/history?limit=1`, { headers })).status,
      streamEntries: async (base, headers) => {
        const stream = await openStream(`${base}api/v1/stream`, headers);
        stream.close();
        return stream.status;
      },
      writePoint: async (base, headers) => {
        const answer = await request(`${base}api/v1/writes`, {
          method: 'POST',
          headers: { ...headers, 'content-type': 'application/json' },
          body: JSON.stringify({ topic: SPEED, value: nextValue++ }),
        });
        if (answer.status === 403) assert.equal(answer.json().code, 'AGENT_ERR_API_FORBIDDEN');
        if (answer.status === 200) assert.equal(answer.json().status, 'done');
        return answer.status;
      },
      getStatus: async (base, headers) => (await request(`${base}api/v1/status`, { headers })).status,
    };

  it('has a case for every route of the API', () => {
    assert.deepEqual(API_ROUTES.map((route) => route.operationId).sort(), Object.keys(CASES).sort());
  });

  const credentials = [
    { who: 'ada', role: 'write', kind: 'basic', headers: () => basicAuth('ada', PASSWORDS.ada) },
    { who: 'ada', role: 'write', kind: 'bearer', headers: () => ({ authorization: `Bearer ${tokens.ada}` }) },
    { who: 'ben', role: 'read', kind: 'basic', headers: () => basicAuth('ben', PASSWORDS.ben) },
    {
      who: 'scada',
      role: 'read',
      kind: 'bearer',
      headers: () => ({ authorization: `Bearer ${tokens.scada}` }),
    },
    { who: 'mes', role: 'write', kind: 'bearer', headers: () => ({ authorization: `Bearer ${tokens.mes}` }) },
  ] as const;
  for (const credential of credentials) {
    it(`${credential.who} (role ${credential.role}, ${credential.kind}): every read route 200, writes ${credential.role === 'write' ? 'done' : '403 AGENT_ERR_API_FORBIDDEN'}`, async () => {
      const base = agent.api!.url;
      for (const route of API_ROUTES) {
        const before = plant.device.holding[REGISTERS.speed];
        const expected = route.role === 'write' && credential.role === 'read' ? 403 : 200;
        const status = await CASES[route.operationId]!(base, credential.headers());
        assert.equal(status, expected, `${route.method} ${route.url}`);
        if (route.role === 'write' && expected === 403)
          assert.equal(plant.device.holding[REGISTERS.speed], before, 'the device is untouched');
      }
      const openapi = await request(`${base}api/v1/openapi.json`, { headers: credential.headers() });
      assert.equal(openapi.status, 200);
      const status = (await request(`${base}api/v1/status`, { headers: credential.headers() })).json<{
        caller: unknown;
      }>();
      assert.deepEqual(status.caller, { user: credential.who, role: credential.role });
    });
  }

  it('the OpenAPI document offers both schemes and names the role of each operation', async () => {
    const doc = (
      await request(`${agent.api!.url}api/v1/openapi.json`, { headers: basicAuth('ben', PASSWORDS.ben) })
    ).json<{
      components: { securitySchemes: unknown };
      security: unknown;
      paths: Record<string, Record<string, { 'x-dmz-role': string }>>;
    }>();
    assert.deepEqual(doc.components.securitySchemes, {
      bearer: { type: 'http', scheme: 'bearer' },
      basic: { type: 'http', scheme: 'basic' },
    });
    assert.deepEqual(doc.security, [{ bearer: [] }, { basic: [] }]);
    assert.equal(doc.paths['/api/v1/writes']?.post?.['x-dmz-role'], 'write');
    assert.equal(doc.paths['/api/v1/points']?.get?.['x-dmz-role'], 'read');
  });

  const wrong = [
    { what: "ada's name with a wrong password", headers: () => basicAuth('ada', 'ada lovelace 1816') },
    { what: "ben's name with ada's password", headers: () => basicAuth('ben', PASSWORDS.ada) },
    { what: 'a name no user has', headers: () => basicAuth('eve', PASSWORDS.ada) },
    {
      what: 'a user who has a token only, with it as a password',
      headers: () => basicAuth('scada', tokens.scada),
    },
    { what: 'a token no user has', headers: () => ({ authorization: `Bearer ${'e'.repeat(64)}` }) },
    {
      what: "ada's password sent as a token",
      headers: () => ({ authorization: `Bearer ${PASSWORDS.ada.replaceAll(' ', '-')}` }),
    },
    {
      what: 'no name before the password',
      headers: () => ({ authorization: `Basic ${Buffer.from(PASSWORDS.ada).toString('base64')}` }),
    },
  ];
  for (const attempt of wrong) {
    it(`refuses ${attempt.what}: 401 with both challenges`, async () => {
      const answer = await request(`${agent.api!.url}api/v1/points`, {
        headers: attempt.headers(),
        localAddress: '127.0.0.3',
      });
      assert.equal(answer.status, 401);
      assert.equal(answer.json().code, 'AGENT_ERR_API_UNAUTHORIZED');
      assert.equal(
        answer.headers['www-authenticate'],
        'Bearer realm="dmz-agent", Basic realm="dmz-agent", charset="UTF-8"',
      );
    });
  }

  it("answers the dashboard's script with x-Basic, so the browser leaves the sign-in to the page", async () => {
    const answer = await request(`${agent.api!.url}api/v1/status`, {
      headers: { 'x-requested-with': 'XMLHttpRequest' },
      localAddress: '127.0.0.3',
    });
    assert.equal(answer.status, 401);
    assert.equal(
      answer.headers['www-authenticate'],
      'Bearer realm="dmz-agent", x-Basic realm="dmz-agent", charset="UTF-8"',
    );
  });

  it(`counts failures per address, whichever user they name: ${MAX_FAILED_ATTEMPTS_PER_MINUTE}, then 429 even for a right password; other addresses go on`, async () => {
    const url = `${agent.api!.url}api/v1/status`;
    const from = { localAddress: '127.0.0.4' };
    for (let attempt = 0; attempt < MAX_FAILED_ATTEMPTS_PER_MINUTE; attempt++) {
      const headers =
        attempt % 3 === 0
          ? basicAuth(attempt % 2 === 0 ? 'ada' : 'ben', `wrong password ${attempt}`)
          : { authorization: `Bearer ${attempt.toString(16).padStart(32, 'f')}` };
      assert.equal((await request(url, { headers, ...from })).status, 401, `attempt ${attempt + 1}`);
    }
    const limited = await request(url, { headers: basicAuth('ben', 'one guess more'), ...from });
    assert.equal(limited.status, 429);
    assert.equal(limited.json().code, 'AGENT_ERR_API_RATE_LIMITED');
    assert.equal((await request(url, { headers: basicAuth('ada', PASSWORDS.ada), ...from })).status, 429);
    assert.equal((await request(url, { headers: basicAuth('ada', PASSWORDS.ada) })).status, 200);
  });

  it("audits each write with its user: ada's done (sending, then done, the OT line on the same nonce), ben's refused", async () => {
    const base = agent.api!.url;
    const write = (headers: Record<string, string>, body: unknown) =>
      request(`${base}api/v1/writes`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    assert.equal((await write(basicAuth('ada', PASSWORDS.ada), { topic: SPEED, value: 77 })).status, 200);
    assert.equal(plant.device.holding[REGISTERS.speed], 77);
    assert.equal((await write(basicAuth('ben', PASSWORDS.ben), { topic: SPEED, value: 78 })).status, 403);
    const outOfRange = await write({ authorization: `Bearer ${tokens.mes}` }, { topic: SPEED, value: 500 });
    assert.equal(outOfRange.status, 422);
    const notOffered = await write(
      { authorization: `Bearer ${tokens.mes}` },
      { topic: `${OT}/line/x`, value: 1 },
    );
    assert.equal(notOffered.status, 403);
    assert.equal(plant.device.holding[REGISTERS.speed], 77);

    const lines = await itAudit();
    const ada = lines.filter((line) => line.user === 'ada' && line.value === 77);
    assert.deepEqual(
      ada.map((line) => line.outcome),
      ['sending', 'done'],
    );
    assert.equal(ada[0]?.topic, SPEED);
    const nonce = ada[0]?.nonce;
    assert.match(String(nonce), /^[A-Za-z0-9_-]{16,}$/);
    assert.equal(ada[1]?.nonce, nonce);
    // The OT side names the IT agent, its only authority; the same nonce joins the two logs.
    const ot = (await otAudit()).filter((line) => line.nonce === nonce);
    assert.deepEqual(
      ot.map((line) => [line.peer, line.outcome]),
      [
        [IT, 'executing'],
        [IT, 'done'],
      ],
    );
    assert.ok(ot.every((line) => !('user' in line)));

    const ben = lines.filter((line) => line.user === 'ben' && line.value === 78);
    assert.deepEqual(
      ben.map(({ outcome, code, topic }) => ({ outcome, code, topic })),
      [{ outcome: 'refused', code: 'AGENT_ERR_API_FORBIDDEN', topic: SPEED }],
    );
    assert.equal(ben[0]?.nonce, undefined, 'nothing was sent');
    const mes = lines.filter((line) => line.user === 'mes' && line.outcome !== 'sending');
    assert.deepEqual(
      mes.slice(-2).map(({ outcome, code }) => ({ outcome, code })),
      [
        { outcome: 'refused', code: 'AGENT_ERR_WRITE_OUT_OF_RANGE' },
        { outcome: 'refused', code: 'AGENT_ERR_WRITE_READ_ONLY' },
      ],
    );
  });

  it('a user removed from the configuration is refused after a restart; the others go on', async () => {
    await agent.stop();
    agent = await start([users.ada, users.scada]);
    const base = agent.api!.url;
    assert.equal(
      (await request(`${base}api/v1/status`, { headers: basicAuth('ben', PASSWORDS.ben) })).status,
      401,
    );
    assert.equal(
      (await request(`${base}api/v1/status`, { headers: { authorization: `Bearer ${tokens.mes}` } })).status,
      401,
    );
    assert.equal(
      (await request(`${base}api/v1/status`, { headers: basicAuth('ada', PASSWORDS.ada) })).status,
      200,
    );
    assert.equal(
      (await request(`${base}api/v1/status`, { headers: { authorization: `Bearer ${tokens.scada}` } }))
        .status,
      200,
    );
  });

  it('a write whose audit line cannot be written is not sent: 502 AGENT_ERR_WRITE_STORAGE, the device untouched', async () => {
    await agent.stop();
    const dir = `${plant.plant.dir}/it-broken-audit`;
    // A directory where the audit file goes: the append fails as a full or broken disk would.
    await mkdir(join(dir, API_AUDIT_DIR, AUDIT_FILE), { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
    agent = await start([users.ada], dir);
    try {
      await waitForValues(agent.api!.url, [SPEED], basicAuth('ada', PASSWORDS.ada));
      const before = plant.device.holding[REGISTERS.speed];
      const answer = await request(`${agent.api!.url}api/v1/writes`, {
        method: 'POST',
        headers: { ...basicAuth('ada', PASSWORDS.ada), 'content-type': 'application/json' },
        body: JSON.stringify({ topic: SPEED, value: 33 }),
      });
      assert.equal(answer.status, 502);
      assert.deepEqual(answer.json(), {
        status: 'failed',
        code: 'AGENT_ERR_WRITE_STORAGE',
        message: "the IT agent's write audit log cannot be written: nothing was sent",
      });
      assert.equal(plant.device.holding[REGISTERS.speed], before);
      assert.ok(
        (await otAudit()).every((line) => line.value !== 33),
        'the OT agent saw nothing',
      );
    } finally {
      // Stopped for good: the refusals below start agents of the same identity, one at a time.
      await agent.stop();
    }
  });

  const badFiles = [
    {
      what: 'a password hash file others can read',
      user: 1,
      key: 'it.api.users[1].passwordHashFile',
      spoil: (entry: ApiUserEntry) => chmod(entry.passwordHashFile!, 0o644),
      message: /it\.api\.users\[1\]\.passwordHashFile: .* is open to group or others/,
    },
    {
      what: 'a token file others can read',
      user: 0,
      key: 'it.api.users[0].tokenFile',
      spoil: (entry: ApiUserEntry) => chmod(entry.tokenFile!, 0o640),
      message: /it\.api\.users\[0\]\.tokenFile: .* is open to group or others/,
    },
    {
      what: 'a password hash file holding a password',
      user: 1,
      key: 'it.api.users[1].passwordHashFile',
      spoil: (entry: ApiUserEntry) => writeFile(entry.passwordHashFile!, 'ben franklin 1706\n'),
      message: /it\.api\.users\[1\]\.passwordHashFile: .* holds no scrypt hash/,
    },
    {
      what: 'a hash asking for 2^24 of memory work',
      user: 1,
      key: 'it.api.users[1].passwordHashFile',
      spoil: async (entry: ApiUserEntry) =>
        writeFile(
          entry.passwordHashFile!,
          (await readFile(entry.passwordHashFile!, 'utf8')).replace('ln=15', 'ln=24'),
        ),
      message: /asks for scrypt ln=24, outside 14 \.\. 17/,
    },
  ];
  for (const bad of badFiles) {
    it(`refuses to start with ${bad.what}: AGENT_ERR_API_SECRET naming ${bad.key}`, async () => {
      const dir = join(plant.plant.dir, `bad-${bad.key.replace(/\W/g, '')}-${badFiles.indexOf(bad)}`);
      await mkdir(dir, { mode: 0o700 });
      const made = [
        await addApiUser(dir, 'ada', 'write', { token: true }),
        await addApiUser(dir, 'ben', 'read', { password: PASSWORDS.ben }),
      ];
      await bad.spoil(made[bad.user]!);
      await assert.rejects(start(made, join(dir, 'state')), (error: unknown) => {
        assert.ok(error instanceof DmzError);
        assert.equal(error.code, 'AGENT_ERR_API_SECRET');
        assert.match(error.message, bad.message);
        return true;
      });
    });
  }

  it('refuses two users with one token: AGENT_ERR_API_SECRET naming both', async () => {
    const dir = join(plant.plant.dir, 'twin-tokens');
    await mkdir(dir, { mode: 0o700 });
    const first = await addApiUser(dir, 'ada', 'write', { token: true });
    const second = await addApiUser(dir, 'ben', 'read', { token: true });
    await writeFile(second.tokenFile!, await readFile(first.tokenFile!));
    await assert.rejects(start([first, second], join(dir, 'state')), {
      code: 'AGENT_ERR_API_SECRET',
      message: /it\.api\.users\[1\]\.tokenFile: .* holds the token of it\.api\.users\[0\]\.tokenFile/,
    });
  });
});

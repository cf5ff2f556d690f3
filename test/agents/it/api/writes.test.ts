/**
 * Writes through the API: POST /api/v1/writes, by a named user of role write, sends a signed
 * command through the relay to the OT agent, whose own checks decide (agents/ot/writes/), and
 * answers with its outcome; the Modbus device's register says whether anything was written. A
 * topic this API does not offer is refused here, before anything is sent, and so is a write from
 * no one: an API without users serves reads alone.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Agent } from '../../../../agents/runtime/agent.ts';
import { API_AUDIT_DIR } from '../../../../agents/it/write-audit.ts';
import { AUDIT_FILE } from '../../../../agents/ot/writes/audit-log.ts';
import { writesDir } from '../../../../agents/ot/writes/write-window.ts';
import { startLoneApi } from './api-alone.ts';
import {
  addApiUser,
  createApiPlant,
  IT,
  OT,
  readAudit,
  REGISTERS,
  request,
  SPEED,
  TEMP,
  waitForValues,
  type ApiPlant,
} from './api-plant.ts';

describe('agents/it/api - writes, answered by the OT agent', () => {
  const writable = [{ filter: `${OT}/plc/+`, type: 'number' }] as const;
  let plant: ApiPlant;
  let agent: Agent;
  let base: string;
  let ada: Record<string, string>;
  before(async () => {
    plant = await createApiPlant({
      writes: { points: [{ point: 'plc/speed', type: 'number', min: 0, max: 120, writers: [IT] }] },
    });
    const dir = join(plant.plant.dir, 'api-users');
    await mkdir(dir, { mode: 0o700 });
    const user = await addApiUser(dir, 'ada', 'write', { token: true });
    ada = { authorization: `Bearer ${(await readFile(user.tokenFile!, 'utf8')).trim()}` };
    // The API offers every plc point; the OT agent takes writes of the speed alone.
    agent = await plant.startIt({ users: [user], writable });
    base = agent.api!.url;
    await waitForValues(base, [TEMP, SPEED], ada);
  });
  after(() => plant.close());

  const write = (body: unknown, url = base, headers = ada) =>
    request(`${url}api/v1/writes`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  it('a write within range is done, and the device register holds it', async () => {
    const answer = await write({ topic: SPEED, value: 90 });
    assert.equal(answer.status, 200, answer.text);
    assert.equal(answer.json().status, 'done');
    assert.equal(plant.device.holding[REGISTERS.speed], 90);
    const audit = await readAudit(join(plant.plant.dir, 'it-state', API_AUDIT_DIR, AUDIT_FILE));
    assert.deepEqual(
      audit.filter((line) => line.value === 90).map(({ user, outcome }) => ({ user, outcome })),
      [
        { user: 'ada', outcome: 'sending' },
        { user: 'ada', outcome: 'done' },
      ],
    );
  });

  // config.ts refuses writable points without a user of role write; beneath it, the API itself
  // gives whoever comes without users role read, so such a configuration still writes nothing.
  it('an API without users refuses a write from anyone: 403 AGENT_ERR_API_FORBIDDEN, audited, nothing reaches the OT agent', async (t) => {
    const lone = await startLoneApi(t, () => Promise.resolve(undefined), { writable, writes: agent.writes });
    const before = plant.device.holding[REGISTERS.speed];
    const answer = await write({ topic: SPEED, value: 99 }, lone.api.url, {});
    assert.equal(answer.status, 403, answer.text);
    assert.deepEqual(answer.json(), {
      code: 'AGENT_ERR_API_FORBIDDEN',
      message: 'a write needs a named user of role write (it.api.users): this API has no users',
    });
    const status = await request(`${lone.api.url}api/v1/status`);
    assert.deepEqual(status.json().caller, { user: null, role: 'read' });
    assert.deepEqual(
      (await readAudit(join(lone.state, API_AUDIT_DIR, AUDIT_FILE))).map(
        ({ user, value, outcome, code }) => ({
          user,
          value,
          outcome,
          code,
        }),
      ),
      [{ user: null, value: 99, outcome: 'refused', code: 'AGENT_ERR_API_FORBIDDEN' }],
    );
    assert.equal(plant.device.holding[REGISTERS.speed], before);
    const otAudit = await readAudit(join(writesDir(`${plant.plant.dir}/ot-state`), AUDIT_FILE));
    assert.ok(
      otAudit.every((line) => line.value !== 99),
      'the OT agent saw nothing',
    );
  });

  const refusals = [
    {
      what: 'a value out of the OT range',
      body: { topic: SPEED, value: 500 },
      status: 422,
      code: 'AGENT_ERR_WRITE_OUT_OF_RANGE',
    },
    {
      what: 'a value of the wrong type',
      body: { topic: SPEED, value: 'fast' },
      status: 422,
      code: 'AGENT_ERR_WRITE_WRONG_TYPE',
    },
    // JSON's types are the value's: the text "95" is not coerced into the number 95 on the way.
    {
      what: 'a number sent as text',
      body: { topic: SPEED, value: '95' },
      status: 422,
      code: 'AGENT_ERR_WRITE_WRONG_TYPE',
    },
    {
      what: 'a point the OT agent does not list',
      body: { topic: TEMP, value: 30 },
      status: 422,
      code: 'AGENT_ERR_WRITE_READ_ONLY',
    },
    {
      what: 'a topic this API does not offer',
      body: { topic: `${OT}/line1/other`, value: 1 },
      status: 403,
      code: 'AGENT_ERR_WRITE_READ_ONLY',
    },
    {
      what: 'a topic with a wildcard',
      body: { topic: `${OT}/plc/#`, value: 1 },
      status: 400,
      code: 'AGENT_ERR_API_BAD_FILTER',
    },
    {
      what: 'a body with an unknown key',
      body: { topic: SPEED, value: 1, force: true },
      status: 400,
      code: 'AGENT_ERR_API_BAD_REQUEST',
    },
  ];
  it('refuses a write sent as text/plain, which a page of another site could send with no preflight (CSRF)', async () => {
    const answer = await request(`${base}api/v1/writes`, {
      method: 'POST',
      headers: { ...ada, 'content-type': 'text/plain' },
      body: JSON.stringify({ topic: SPEED, value: 100 }),
    });
    assert.equal(answer.status, 415);
    assert.equal(answer.json().code, 'AGENT_ERR_API_MEDIA_TYPE');
    assert.notEqual(plant.device.holding[REGISTERS.speed], 100);
  });

  for (const refusal of refusals) {
    it(`refuses ${refusal.what} (${refusal.code}) and the device is untouched`, async () => {
      const before = plant.device.holding[REGISTERS.speed];
      const answer = await write(refusal.body);
      assert.equal(answer.status, refusal.status, answer.text);
      const body = answer.json<{ code: string; message: string; status?: string }>();
      assert.equal(body.code, refusal.code);
      if (refusal.status === 422) assert.equal(body.status, 'refused');
      assert.equal(plant.device.holding[REGISTERS.speed], before);
      assert.equal(plant.device.holding[REGISTERS.temp], 215);
    });
  }
});

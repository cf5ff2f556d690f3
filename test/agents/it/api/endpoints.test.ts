/**
 * The IT agent's HTTP API against a real plant: relay, OT agent polling a Modbus device, IT agent
 * with the recent-values store. Each endpoint, and each way a request is refused, with its code.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Agent } from '../../../../agents/runtime/agent.ts';
import { waitFor } from '../../../support/wait.ts';
import {
  BROKEN,
  createApiPlant,
  IT,
  OT,
  REGISTERS,
  request,
  SPEED,
  TEMP,
  waitForValues,
  type ApiPlant,
} from './api-plant.ts';

interface TopicValue {
  topic: string;
  seq: number;
  value: unknown;
  quality: string;
  reason?: string;
  sourceTime: string;
  unit?: string;
  gaps: number;
}

describe('agents/it/api - endpoints against a real plant', () => {
  let plant: ApiPlant;
  let it_: Agent;
  let base: string;
  before(async () => {
    plant = await createApiPlant();
    it_ = await plant.startIt();
    base = it_.api!.url;
    await waitForValues(base, [TEMP, SPEED, BROKEN]);
  });
  after(() => plant.close());

  it('GET /api/v1/points: every topic by name, with value, quality, unit and a cursor', async () => {
    const answer = await request(`${base}api/v1/points`);
    assert.equal(answer.status, 200);
    assert.match(String(answer.headers['content-type']), /^application\/json/);
    const body = answer.json<{ cursor: string; points: TopicValue[] }>();
    assert.match(body.cursor, /^\d+-\d+$/);
    assert.deepEqual(
      body.points.map((point) => point.topic),
      [BROKEN, SPEED, TEMP],
    );
    const [broken, speed, temp] = body.points as [TopicValue, TopicValue, TopicValue];
    assert.equal(temp.value, 21.5);
    assert.equal(temp.quality, 'good');
    assert.equal(temp.unit, 'degC');
    assert.equal(speed.unit, undefined);
    assert.equal(broken.quality, 'bad');
    assert.match(broken.reason ?? '', /exception 2/i);
    assert.ok(!Number.isNaN(Date.parse(temp.sourceTime)));
  });

  it('GET /api/v1/points?filter: only the topics the filter matches', async () => {
    const answer = await request(`${base}api/v1/points?filter=${encodeURIComponent(`${OT}/+/temp`)}`);
    assert.equal(answer.status, 200);
    assert.deepEqual(
      answer.json<{ points: TopicValue[] }>().points.map((point) => point.topic),
      [TEMP],
    );
  });

  it('GET /api/v1/points/<topic>: one topic; a value that changes at the device changes here', async () => {
    plant.device.setHolding(REGISTERS.speed, [75]);
    const point = await waitFor(
      async () => {
        const body = (await request(`${base}api/v1/points/${SPEED}`)).json<{ point: TopicValue }>();
        return body.point.value === 75 ? body.point : undefined;
      },
      'speed 75 through the relay',
      30_000,
      50,
    );
    assert.equal(point.quality, 'good');
  });

  it('POST /api/v1/points/read: the named topics, in the order asked', async () => {
    const answer = await request(`${base}api/v1/points/read`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ topics: [TEMP, BROKEN] }),
    });
    assert.equal(answer.status, 200, answer.text);
    assert.deepEqual(
      answer.json<{ points: TopicValue[] }>().points.map((point) => point.topic),
      [TEMP, BROKEN],
    );
  });

  it('GET /api/v1/history: pages after a cursor, in order, and from a source time', async () => {
    const first = (await request(`${base}api/v1/history?filter=${encodeURIComponent(TEMP)}&limit=2`)).json<{
      entries: { cursor: string; kind: string; topic: string; seq: number }[];
      cursor: string;
      more: boolean;
    }>();
    assert.equal(first.entries.length, 2);
    assert.equal(first.more, true);
    assert.equal(first.cursor, first.entries[1]!.cursor);
    const next = (
      await request(`${base}api/v1/history?filter=${encodeURIComponent(TEMP)}&limit=2&since=${first.cursor}`)
    ).json<{ entries: { seq: number }[] }>();
    assert.deepEqual(
      next.entries.map((entry) => entry.seq),
      [first.entries[1]!.seq + 1, first.entries[1]!.seq + 2],
    );
    const from = new Date(Date.now() + 60_000).toISOString();
    const none = (await request(`${base}api/v1/history?from=${from}`)).json<{
      entries: unknown[];
      more: boolean;
    }>();
    assert.deepEqual(none.entries, []);
    assert.equal(none.more, false);
  });

  it("GET /api/v1/status: the agent's relay link and its consumer of the OT agent", async () => {
    const body = (await request(`${base}api/v1/status`)).json<{
      agent: {
        name: string;
        relay: { connected: boolean };
        it: { consumers: { from: string; state: string }[] };
      };
      store: { name: string; topics: number };
      writes: boolean;
    }>();
    assert.equal(body.agent.name, IT);
    assert.equal(body.agent.relay.connected, true);
    assert.equal(body.agent.it.consumers[0]?.from, OT);
    assert.equal(body.store.name, 'recent');
    assert.equal(body.store.topics, 3);
  });

  const refusals: {
    what: string;
    url: string;
    options?: Parameters<typeof request>[1];
    status: number;
    code: string;
  }[] = [
    {
      what: 'a filter with # not last',
      url: 'api/v1/points?filter=a/%23/b',
      status: 400,
      code: 'AGENT_ERR_API_BAD_FILTER',
    },
    {
      what: 'a topic with a wildcard',
      url: 'api/v1/points/press-7/+',
      status: 400,
      code: 'AGENT_ERR_API_BAD_FILTER',
    },
    {
      what: 'an unknown topic',
      url: `api/v1/points/${OT}/plc/nothing`,
      status: 404,
      code: 'AGENT_ERR_API_UNKNOWN_TOPIC',
    },
    {
      what: 'an unknown query key',
      url: 'api/v1/points?filtre=%23',
      status: 400,
      code: 'AGENT_ERR_API_BAD_REQUEST',
    },
    {
      what: 'a limit out of range',
      url: 'api/v1/history?limit=0',
      status: 400,
      code: 'AGENT_ERR_API_BAD_REQUEST',
    },
    {
      what: 'a malformed cursor',
      url: 'api/v1/history?since=abc',
      status: 400,
      code: 'AGENT_ERR_API_BAD_REQUEST',
    },
    {
      what: 'a cursor ahead of the store',
      url: 'api/v1/history?since=1-999999999',
      status: 400,
      code: 'AGENT_ERR_API_BAD_CURSOR',
    },
    {
      what: 'a cursor of another epoch',
      url: 'api/v1/history?since=7-1',
      status: 410,
      code: 'AGENT_ERR_API_CURSOR_EXPIRED',
    },
    {
      what: 'since and from together',
      url: `api/v1/history?since=1-1&from=${new Date().toISOString()}`,
      status: 400,
      code: 'AGENT_ERR_API_BAD_REQUEST',
    },
    {
      what: 'a stream from a bad cursor',
      url: 'api/v1/stream',
      options: { headers: { 'last-event-id': '1-999999999' } },
      status: 400,
      code: 'AGENT_ERR_API_BAD_CURSOR',
    },
    { what: 'no such endpoint', url: 'api/v2/points', status: 404, code: 'AGENT_ERR_API_NOT_FOUND' },
    {
      what: 'a body that is not JSON',
      url: 'api/v1/points/read',
      options: { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"topics": [' },
      status: 400,
      code: 'AGENT_ERR_API_BAD_JSON',
    },
    {
      what: 'a body too large',
      url: 'api/v1/points/read',
      options: {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ topics: ['x'.repeat(200 * 1024)] }),
      },
      status: 413,
      code: 'AGENT_ERR_API_BODY_TOO_LARGE',
    },
    {
      what: 'a body that is not JSON by its type',
      url: 'api/v1/points/read',
      options: { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'topics' },
      status: 415,
      code: 'AGENT_ERR_API_MEDIA_TYPE',
    },
    {
      what: 'a body of the wrong shape',
      url: 'api/v1/points/read',
      options: {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"topics": "press-7/plc/temp"}',
      },
      status: 400,
      code: 'AGENT_ERR_API_BAD_REQUEST',
    },
    {
      what: 'a batch read naming an unknown topic',
      url: 'api/v1/points/read',
      options: {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ topics: [TEMP, `${OT}/nothing`] }),
      },
      status: 404,
      code: 'AGENT_ERR_API_UNKNOWN_TOPIC',
    },
  ];
  for (const refusal of refusals) {
    it(`refuses ${refusal.what}: ${refusal.status} ${refusal.code}`, async () => {
      const answer = await request(`${base}${refusal.url}`, refusal.options);
      assert.equal(answer.status, refusal.status, answer.text);
      assert.match(String(answer.headers['content-type']), /^application\/json/);
      const body = answer.json<{ code: string; message: string }>();
      assert.equal(body.code, refusal.code);
      assert.ok(body.message.length > 0);
      assert.deepEqual(Object.keys(body).sort(), ['code', 'message']);
    });
  }
});

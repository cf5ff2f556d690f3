/**
 * A user of role read trying to write: the write route by every method and spelling a router or
 * a proxy might take for it (encoded, trailing slash, doubled slashes, dot segments, case, a
 * method override header), HEAD and OPTIONS. None may reach the write handler, which would audit
 * AGENT_ERR_WRITE_READ_ONLY (this API sends no writes): the audit shows only refusals by role. And
 * what an audit line holds is the user's text as data: a topic or value that spells a JSON line
 * stays inside its own.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { AUDIT_FILE } from '../../../../agents/ot/writes/audit-log.ts';
import { API_AUDIT_DIR } from '../../../../agents/it/write-audit.ts';
import { startLoneApi } from './api-alone.ts';
import { basicAuth, readAudit, request } from './api-plant.ts';

const PASSWORD = 'ben franklin 1706';
const BODY = JSON.stringify({ topic: 'press-7/plc/speed', value: 99 });

const auditLines = (state: string) => readAudit(join(state, API_AUDIT_DIR, AUDIT_FILE));

describe('agents/it/api - a read user escalating to write', () => {
  it('no method or spelling of the write route reaches the write handler', async (t) => {
    const lone = await startLoneApi(t, async ({ addUser }) => [
      await addUser('ben', 'read', { password: PASSWORD }),
    ]);
    const base = lone.api.url;
    // A connection each: a refusal before the body is read may close the one it came on.
    const json = { ...basicAuth('ben', PASSWORD), 'content-type': 'application/json', connection: 'close' };
    const attempts: readonly (readonly [string, string, Record<string, string>?])[] = [
      ['POST', 'api/v1/writes'],
      ['POST', '%61pi/v1/%77rites'],
      ['POST', 'api/v1/writes/'],
      ['POST', 'api//v1/writes'],
      ['POST', 'api/v1//writes'],
      ['POST', 'api/v1/./writes'],
      ['POST', 'api/v1/points/../writes'],
      ['POST', 'api/v1/points/%2e%2e/writes'],
      ['POST', 'api/v1/points%2f..%2fwrites'],
      ['POST', 'API/V1/WRITES'],
      ['POST', 'api/v1/writes;role=write'],
      ['POST', 'api/v1/writes?role=write'],
      ['POST', 'api/v1/writes%00'],
      [
        'POST',
        'api/v1/points/read',
        { 'x-http-method-override': 'POST', 'x-original-url': '/api/v1/writes' },
      ],
      ['GET', 'api/v1/points', { 'x-http-method-override': 'POST', 'x-rewrite-url': '/api/v1/writes' }],
      ['PUT', 'api/v1/writes'],
      ['PATCH', 'api/v1/writes'],
      ['DELETE', 'api/v1/writes'],
      ['GET', 'api/v1/writes'],
      ['HEAD', 'api/v1/writes'],
      ['OPTIONS', 'api/v1/writes'],
    ];
    let byRole = 0;
    for (const [method, path, extra] of attempts) {
      const answer = await request(`${base}${path}`, {
        method,
        headers: { ...json, ...extra },
        // Node's client frames a body for these alone (no length or chunks on a DELETE's).
        ...(['POST', 'PUT', 'PATCH'].includes(method) ? { body: BODY } : {}),
      });
      const what = `${method} /${path}`;
      assert.notEqual(answer.status, 429, what);
      if (method !== 'HEAD') {
        const body = answer.json();
        // A write handler's answer is {status: done|refused|failed}, or its READ_ONLY refusal.
        assert.equal(typeof body.status, 'undefined', `${what}: ${answer.text}`);
        assert.notEqual(body.code, 'AGENT_ERR_WRITE_READ_ONLY', what);
      }
      if (answer.status === 403) byRole++;
    }
    const audit = await auditLines(lone.state);
    assert.equal(audit.length, byRole);
    assert.ok(byRole >= 1, 'the plain POST /api/v1/writes is refused by role');
    for (const line of audit) {
      assert.equal(line.user, 'ben');
      assert.equal(line.code, 'AGENT_ERR_API_FORBIDDEN');
    }
  });

  it('a topic or value that spells an audit line stays data in its own line', async (t) => {
    const lone = await startLoneApi(t, async ({ addUser }) => [
      await addUser('ben', 'read', { password: PASSWORD }),
    ]);
    const forged = '"}\n{"time":"2026-01-01T00:00:00Z","user":"ada","outcome":"done"}\n';
    const answer = await request(`${lone.api.url}api/v1/writes`, {
      method: 'POST',
      headers: { ...basicAuth('ben', PASSWORD), 'content-type': 'application/json' },
      body: JSON.stringify({ topic: `press-7/${forged}`, value: forged }),
    });
    assert.equal(answer.status, 403);
    const audit = await auditLines(lone.state);
    assert.equal(audit.length, 1);
    assert.equal(audit[0]?.user, 'ben');
    assert.equal(audit[0]?.topic, `press-7/${forged}`);
    assert.equal(audit[0]?.value, forged);
  });
});

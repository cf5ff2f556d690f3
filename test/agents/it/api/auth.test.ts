/**
 * The API's optional TLS and authentication, with the real agent: the single shared secret
 * (it.api.auth; named users are users.test.ts's), a bearer token or basic auth
 * read from a 0600 file, every /api/ request refused without it (401 with a challenge), the
 * dashboard's files served without it; a secret file others can read, or too short, stops the
 * agent at start; TLS with a certificate made for the test, plain HTTP refused on that port.
 */
import assert from 'node:assert/strict';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MAX_FAILED_ATTEMPTS_PER_MINUTE } from '../../../../agents/it/api/auth.ts';
import { DmzError } from '../../../../relay/protocol/errors.ts';
import { createTestPki, type TestPki } from '../../../support/test-pki.ts';
import { createApiPlant, request, TEMP, waitForValues, type ApiPlant } from './api-plant.ts';

const TOKEN = 'a3f1c9e07b2d4e6f8a0b1c2d3e4f5a6b';

async function secretFile(dir: string, name: string, text: string, mode = 0o600): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, `${text}\n`, { mode });
  await chmod(path, mode);
  return path;
}

describe('agents/it/api - authentication and TLS', () => {
  let plant: ApiPlant;
  let pki: TestPki;
  before(async () => {
    plant = await createApiPlant();
    pki = await createTestPki();
  });
  after(() => plant.close());

  it('bearer token: refused without it or with another, served with it; the dashboard page needs none', async () => {
    const tokenFile = await secretFile(plant.plant.dir, 'api-token', TOKEN);
    const agent = await plant.startIt({ auth: { bearerTokenFile: tokenFile } });
    try {
      const base = agent.api!.url;
      for (const headers of [
        {},
        { authorization: `Bearer ${TOKEN.replace('a', 'b')}` },
        { authorization: `Basic ${TOKEN}` },
      ]) {
        const refused = await request(`${base}api/v1/points`, { headers });
        assert.equal(refused.status, 401);
        assert.equal(refused.headers['www-authenticate'], 'Bearer realm="dmz-agent"');
        assert.deepEqual(refused.json(), {
          code: 'AGENT_ERR_API_UNAUTHORIZED',
          message: 'credentials missing or wrong',
        });
      }
      const authorization = { authorization: `Bearer ${TOKEN}` };
      await waitForValues(base, [TEMP], authorization);
      assert.equal((await request(`${base}api/v1/openapi.json`)).status, 401);
      const doc = (await request(`${base}api/v1/openapi.json`, { headers: authorization })).json<{
        components: { securitySchemes: unknown };
      }>();
      assert.deepEqual(doc.components.securitySchemes, { bearer: { type: 'http', scheme: 'bearer' } });
      // The single shared secret of earlier versions is one user of role write, named as shared.
      const status = await request(`${base}api/v1/status`, { headers: authorization });
      assert.deepEqual(status.json().caller, { user: 'shared-token', role: 'write' });
      const page = await request(base);
      assert.equal(page.status, 200);
      assert.match(page.text, /<title>dmz-agent dashboard<\/title>/);
      assert.match(String(page.headers['content-security-policy']), /default-src 'none'/);
    } finally {
      await agent.stop();
    }
  });

  it('bearer token: a path the router decodes, a HEAD, an unknown path, all need it', async () => {
    const tokenFile = await secretFile(plant.plant.dir, 'api-token-paths', TOKEN);
    const agent = await plant.startIt({ auth: { bearerTokenFile: tokenFile } });
    try {
      const base = agent.api!.url;
      await waitForValues(base, [TEMP], { authorization: `Bearer ${TOKEN}` });
      // The router serves /%61pi/v1/points as /api/v1/points: the check must see the same route.
      for (const [method, path] of [
        ['GET', '%61pi/v1/points'],
        ['GET', 'ap%69/v1/status'],
        ['GET', '%61pi/v1/history'],
        ['GET', '%61pi/v1/stream'],
        ['GET', '%61pi/v1/openapi.json'],
        ['GET', `%61pi/v1/points/${TEMP}`],
        ['HEAD', '%61pi/v1/points'],
        ['HEAD', 'api/v1/points'],
        ['GET', 'no/such/path'],
      ] as const) {
        const refused = await request(`${base}${path}`, { method });
        assert.equal(refused.status, 401, `${method} /${path}`);
      }
      const write = await request(`${base}%61pi/v1/writes`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ topic: TEMP, value: 1 }),
      });
      assert.equal(write.status, 401);
      const badEscape = await request(`${base}api/v1/points/%ZZ`);
      assert.equal(badEscape.status, 400);
      assert.equal(badEscape.json().code, 'AGENT_ERR_API_BAD_REQUEST');
      // The dashboard's files stay open, however their path is spelt.
      assert.equal((await request(`${base}%64ashboard/dashboard.js`)).status, 200);
    } finally {
      await agent.stop();
    }
  });

  it(`refuses an address for a minute after ${MAX_FAILED_ATTEMPTS_PER_MINUTE} failures, even with the right token; others go on`, async () => {
    const tokenFile = await secretFile(plant.plant.dir, 'api-token-limit', TOKEN);
    const agent = await plant.startIt({ auth: { bearerTokenFile: tokenFile } });
    try {
      const url = `${agent.api!.url}api/v1/status`;
      const wrong = { authorization: `Bearer ${TOKEN.replace('a', 'c')}` };
      for (let attempt = 0; attempt < MAX_FAILED_ATTEMPTS_PER_MINUTE; attempt++) {
        assert.equal((await request(url, { headers: wrong })).status, 401, `attempt ${attempt + 1}`);
      }
      const limited = await request(url, { headers: wrong });
      assert.equal(limited.status, 429);
      assert.equal(limited.json().code, 'AGENT_ERR_API_RATE_LIMITED');
      assert.ok(Number(limited.headers['retry-after']) > 0);
      // A right guess now looks like a wrong one: the limit is no oracle.
      const right = { authorization: `Bearer ${TOKEN}` };
      assert.equal((await request(url, { headers: right })).status, 429);
      assert.equal((await request(url, { headers: right, localAddress: '127.0.0.2' })).status, 200);
    } finally {
      await agent.stop();
    }
  });

  it('basic auth: the user and the password from its file', async () => {
    const passwordFile = await secretFile(plant.plant.dir, 'api-password', 'correct horse battery');
    const agent = await plant.startIt({ auth: { basic: { user: 'operator', passwordFile } } });
    try {
      const base = agent.api!.url;
      const basic = (text: string) => ({ authorization: `Basic ${Buffer.from(text).toString('base64')}` });
      for (const headers of [{}, basic('operator:wrong password'), basic('intruder:correct horse battery')]) {
        const refused = await request(`${base}api/v1/status`, { headers });
        assert.equal(refused.status, 401);
        assert.equal(refused.headers['www-authenticate'], 'Basic realm="dmz-agent", charset="UTF-8"');
      }
      assert.equal(
        (await request(`${base}api/v1/status`, { headers: basic('operator:correct horse battery') })).status,
        200,
      );
    } finally {
      await agent.stop();
    }
  });

  const badSecrets = [
    { what: 'a token file others can read', text: TOKEN, mode: 0o644, message: /open to group or others/ },
    { what: 'a token too short to be one', text: 'short', mode: 0o600, message: /fewer than 16 characters/ },
  ];
  for (const bad of badSecrets) {
    it(`refuses to start with ${bad.what}: AGENT_ERR_API_SECRET`, async () => {
      const tokenFile = await secretFile(plant.plant.dir, `bad-token-${bad.mode}`, bad.text, bad.mode);
      await assert.rejects(plant.startIt({ auth: { bearerTokenFile: tokenFile } }), (error: unknown) => {
        assert.ok(error instanceof DmzError);
        assert.equal(error.code, 'AGENT_ERR_API_SECRET');
        assert.match(error.message, bad.message);
        return true;
      });
    });
  }

  it('without auth, answers only requests naming an address or localhost: a rebound name is refused', async () => {
    const agent = await plant.startIt();
    try {
      const base = agent.api!.url;
      for (const host of [
        'evil.example',
        'evil.example:8080',
        'localhost.evil.example',
        'localhost.',
        '127.0.0.1.evil.example',
        '[::1].evil.example',
        '[::1]:8080:80',
      ]) {
        for (const path of ['', 'api/v1/points']) {
          const refused = await request(`${base}${path}`, { headers: { host } });
          assert.equal(refused.status, 421, `${host} ${path}`);
          assert.equal(refused.json().code, 'AGENT_ERR_API_HOST');
        }
      }
      for (const host of [
        '127.0.0.1',
        `127.0.0.1:${agent.api!.port}`,
        'localhost',
        `localhost:${agent.api!.port}`,
        '[::1]:8080',
      ]) {
        assert.equal((await request(`${base}api/v1/status`, { headers: { host } })).status, 200, host);
      }
      // No users: whoever reaches the loopback listener may read, and no more (writes.test.ts).
      assert.deepEqual((await request(`${base}api/v1/status`)).json().caller, { user: null, role: 'read' });
    } finally {
      await agent.stop();
    }
  });

  it('with auth but no TLS, a rebound name is refused still: a page could ask for the password', async () => {
    const tokenFile = await secretFile(plant.plant.dir, 'api-token-host', TOKEN);
    const agent = await plant.startIt({ auth: { bearerTokenFile: tokenFile } });
    try {
      const answer = await request(`${agent.api!.url}api/v1/status`, {
        headers: { host: 'historian.it.example', authorization: `Bearer ${TOKEN}` },
      });
      assert.equal(answer.status, 421);
      assert.equal(answer.json().code, 'AGENT_ERR_API_HOST');
    } finally {
      await agent.stop();
    }
  });

  it('with TLS and auth, any name: the certificate and the credentials decide', async () => {
    const tokenFile = await secretFile(plant.plant.dir, 'api-token-tls-host', TOKEN);
    const cert = await secretFile(plant.plant.dir, 'api-cert-host.pem', pki.relay.certPem);
    const key = await secretFile(plant.plant.dir, 'api-key-host.pem', pki.relay.keyPem);
    const agent = await plant.startIt({ auth: { bearerTokenFile: tokenFile }, tls: { cert, key } });
    try {
      const answer = await request(`${agent.api!.url}api/v1/status`, {
        headers: { host: 'historian.it.example', authorization: `Bearer ${TOKEN}` },
        ca: pki.ca.certPem,
        // The test's certificate names localhost: a deployment's names the host it is reached by.
        servername: 'localhost',
      });
      assert.equal(answer.status, 200);
    } finally {
      await agent.stop();
    }
  });

  it('TLS: served over https to a client that trusts the certificate; plain http gets nothing', async () => {
    const cert = await secretFile(plant.plant.dir, 'api-cert.pem', pki.relay.certPem);
    const key = await secretFile(plant.plant.dir, 'api-key.pem', pki.relay.keyPem);
    const agent = await plant.startIt({ tls: { cert, key } });
    try {
      const base = agent.api!.url;
      assert.match(base, /^https:\/\/127\.0\.0\.1:\d+\/$/);
      const answer = await request(`${base}api/v1/status`, { ca: pki.ca.certPem });
      assert.equal(answer.status, 200);
      await assert.rejects(request(`${base}api/v1/status`), /self-signed|unable to verify|certificate/i);
      await assert.rejects(request(base.replace('https:', 'http:')), /socket hang up|ECONNRESET|parse/i);
    } finally {
      await agent.stop();
    }
  });

  it('TLS: a key file others can read stops the agent at start', async () => {
    const cert = await secretFile(plant.plant.dir, 'api-cert2.pem', pki.relay.certPem);
    const key = await secretFile(plant.plant.dir, 'api-key2.pem', pki.relay.keyPem, 0o640);
    await assert.rejects(plant.startIt({ tls: { cert, key } }), { code: 'AGENT_ERR_API_SECRET' });
  });
});

/**
 * The limit on failed sign-ins per address, attacked: many guesses sent at once (each waits for
 * scrypt, so all would be in flight before the first failure counts), a forged X-Forwarded-For
 * to pose as other addresses, many user names from one address.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_FAILED_ATTEMPTS_PER_MINUTE } from '../../../../agents/it/api/auth.ts';
import { startLoneApi } from './api-alone.ts';
import { basicAuth, request } from './api-plant.ts';

const PASSWORD = 'ada lovelace 1815';

describe('agents/it/api - the failed sign-in limit under attack', () => {
  it(`guesses sent at once: at most ${MAX_FAILED_ATTEMPTS_PER_MINUTE + 1} are checked, the rest refused 429 unchecked`, async (t) => {
    const lone = await startLoneApi(t, async ({ addUser }) => [
      await addUser('ada', 'write', { password: PASSWORD }),
    ]);
    const url = `${lone.api.url}api/v1/points`;
    const from = { localAddress: '127.0.0.11' };
    const guesses = 3 * MAX_FAILED_ATTEMPTS_PER_MINUTE;
    const answers = await Promise.all(
      Array.from({ length: guesses }, (_, guess) =>
        request(url, { headers: basicAuth('ada', `guess number ${guess}`), ...from }),
      ),
    );
    const statuses = answers.map((answer) => answer.status);
    const checked = statuses.filter((status) => status === 401).length;
    assert.ok(
      checked <= MAX_FAILED_ATTEMPTS_PER_MINUTE + 1,
      `${checked} of ${guesses} parallel guesses were checked`,
    );
    assert.equal(statuses.filter((status) => status === 429).length, guesses - checked);
    // Refused for the minute, the right password too; another address is not.
    assert.equal((await request(url, { headers: basicAuth('ada', PASSWORD), ...from })).status, 429);
    assert.equal((await request(url, { headers: basicAuth('ada', PASSWORD) })).status, 200);
  });

  it('a forged X-Forwarded-For or many user names are still one address', async (t) => {
    const lone = await startLoneApi(t, async ({ addUser }) => [
      await addUser('ada', 'write', { password: PASSWORD }),
    ]);
    const url = `${lone.api.url}api/v1/points`;
    const from = { localAddress: '127.0.0.12' };
    // The last one is checked, fails and brings the refusal.
    for (let attempt = 0; attempt <= MAX_FAILED_ATTEMPTS_PER_MINUTE; attempt++) {
      const headers = {
        ...basicAuth(`user${attempt}`, 'a wrong password'),
        'x-forwarded-for': `10.0.${attempt}.1`,
        'x-real-ip': `10.1.${attempt}.1`,
        forwarded: `for=10.2.${attempt}.1`,
      };
      const expected = attempt < MAX_FAILED_ATTEMPTS_PER_MINUTE ? 401 : 429;
      assert.equal((await request(url, { headers, ...from })).status, expected, `attempt ${attempt + 1}`);
    }
    const last = await request(url, {
      headers: { ...basicAuth('ada', PASSWORD), 'x-forwarded-for': '10.9.9.9' },
      ...from,
    });
    assert.equal(last.status, 429);
    assert.equal(last.json().code, 'AGENT_ERR_API_RATE_LIMITED');
  });
});

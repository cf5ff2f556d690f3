/**
 * Credentials built to confuse the check (auth.ts identify): a token that is a prefix or an
 * extension of a user's, or differs in case; user names with a NUL, a space, another case, a
 * look-alike letter, a colon; a password typed decomposed; an Authorization header past what
 * Node reads. None is let in but the one that is the user's; the listener serves on after each.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { startLoneApi } from './api-alone.ts';
import { request } from './api-plant.ts';

/** Composed (NFC) as typed on one system; the other may send it decomposed (NFD). */
const PASSWORD = 'caf\u00e9 au lait 1899';

const basic = (pair: string) => ({ authorization: `Basic ${Buffer.from(pair, 'utf8').toString('base64')}` });

describe('agents/it/api - credentials built to confuse the check', () => {
  it('lets in only the exact token and the exact name; a password composed or decomposed is one', async (t) => {
    const lone = await startLoneApi(t, async ({ addUser }) => [
      await addUser('ada', 'write', { password: PASSWORD, token: true }),
    ]);
    const token = (await readFile(`${lone.dir}/ada.token`, 'utf8')).trim();
    const url = `${lone.api.url}api/v1/points`;
    const refused: readonly [string, Record<string, string>][] = [
      ['a prefix of the token', { authorization: `Bearer ${token.slice(0, -1)}` }],
      ['the token and one more character', { authorization: `Bearer ${token}0` }],
      ['the token in upper case', { authorization: `Bearer ${token.toUpperCase()}` }],
      ['the token with a space inside', { authorization: `Bearer ${token.slice(0, 8)} ${token.slice(8)}` }],
      ['the token as a basic password', basic(`ada:${token}`)],
      ['a NUL after the name', basic(`ada\u0000:${PASSWORD}`)],
      ['a space after the name', basic(`ada :${PASSWORD}`)],
      ['the name in upper case', basic(`ADA:${PASSWORD}`)],
      ['a Cyrillic a in the name', basic(`\u0430da:${PASSWORD}`)],
      ['the colon moved into the name', basic(`ada:${PASSWORD.slice(0, 1)}:${PASSWORD.slice(1)}`)],
      ['no colon at all', basic(`ada${PASSWORD}`)],
      ['base64 that is not', { authorization: 'Basic !!!!' }],
      ['a scheme of its own', { authorization: `Token ${token}` }],
    ];
    // A connection each, from an address of its own: this test is not about the limit.
    let from = 20;
    for (const [what, headers] of refused) {
      const answer = await request(url, { headers, localAddress: `127.0.0.${from++}` });
      assert.equal(answer.status, 401, what);
    }
    for (const [what, headers] of [
      ['the token', { authorization: `Bearer ${token}` }],
      ['the scheme in lower case', { authorization: `bearer ${token}` }],
      ['the password composed', basic(`ada:${PASSWORD}`)],
      ['the password decomposed', basic(`ada:${PASSWORD.normalize('NFD')}`)],
    ] as const)
      assert.equal((await request(url, { headers })).status, 200, what);
  });

  it("refuses an Authorization header past Node's header limit (431) and serves on", async (t) => {
    const lone = await startLoneApi(t, async ({ addUser }) => [
      await addUser('ada', 'write', { token: true }),
    ]);
    const token = (await readFile(`${lone.dir}/ada.token`, 'utf8')).trim();
    const url = `${lone.api.url}api/v1/points`;
    const huge = await request(url, {
      headers: { authorization: `Bearer ${'f'.repeat(64 * 1024)}`, connection: 'close' },
      localAddress: '127.0.0.60',
    });
    assert.equal(huge.status, 431);
    // Just under the limit: read, compared, refused like any other wrong token.
    const long = await request(url, {
      headers: { authorization: `Bearer ${'f'.repeat(12 * 1024)}` },
      localAddress: '127.0.0.61',
    });
    assert.equal(long.status, 401);
    assert.equal((await request(url, { headers: { authorization: `Bearer ${token}` } })).status, 200);
  });
});

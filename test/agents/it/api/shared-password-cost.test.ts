/**
 * The shared password of the old single-secret form (`it.api.auth.basic`) costs a guesser what a
 * named user's does. Its file holds the password itself, so it used to be compared as a SHA-256
 * digest, at once: a local user who rotates source addresses through 127.0.0.0/8 (each with its
 * own failure count) could try thousands a second. It is now hashed with scrypt when the agent
 * loads it, and every guess waits for an scrypt check, at most two at a time, like a user's.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadAuthenticator, type ApiAuthenticator } from '../../../../agents/it/api/auth.ts';

const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('agents/it/api - the shared basic password', () => {
  let dir: string;
  let authenticator: ApiAuthenticator;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shared-password-'));
    const passwordFile = join(dir, 'password');
    await writeFile(passwordFile, 'correct horse battery\n', { mode: 0o600 });
    authenticator = await loadAuthenticator([
      {
        name: 'operator',
        role: 'write',
        token: undefined,
        password: { file: passwordFile, key: 'it.api.auth.basic.passwordFile', hashed: false },
      },
    ]);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('answers no guess before an scrypt check: a burst of 20 is still waiting a loop turn later', async () => {
    let answered = 0;
    const guesses = Array.from({ length: 20 }, (_, guess) =>
      authenticator.identify(basic('operator', `guess ${guess}`)).then((caller) => {
        answered++;
        return caller;
      }),
    );
    // A digest comparison answers within microtasks; scrypt at N 2^15, r 8 (32 MiB) takes tens of
    // milliseconds of the thread pool at the least.
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(answered, 0, `${answered} guesses answered without an scrypt check`);
    assert.deepEqual(await Promise.all(guesses), Array(20).fill(undefined));
    assert.deepEqual(await authenticator.identify(basic('operator', 'correct horse battery')), {
      user: 'operator',
      role: 'write',
    });
  });
});

/**
 * The failed-attempt gate in memory (auth.ts createAuthGate), with an authenticator that answers
 * only when the test lets it, as a scrypt check answers only when the thread pool has done it:
 * guesses from one address that are all in flight at once must not all be checked.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  createAuthGate,
  MAX_FAILED_ATTEMPTS_PER_MINUTE,
  type ApiAuthenticator,
  type ApiCaller,
} from '../../../../agents/it/api/auth.ts';

/** Every check waits until `answerAll`; `checked` counts the checks begun. */
function heldAuthenticator(): ApiAuthenticator & { checked: number; answerAll(): void } {
  const held: (() => void)[] = [];
  const authenticator = {
    checked: 0,
    schemes: ['basic'] as const,
    challenge: () => 'Basic realm="test"',
    identify: (header: string | undefined) => {
      authenticator.checked++;
      return new Promise<ApiCaller | undefined>((answer) =>
        held.push(() => answer(header === 'right' ? { user: 'ada', role: 'write' } : undefined)),
      );
    },
    answerAll: () => {
      for (const answer of held.splice(0)) answer();
    },
  };
  return authenticator;
}

describe('agents/it/api - the failed-attempt gate', () => {
  it(`checks at most ${MAX_FAILED_ATTEMPTS_PER_MINUTE + 1} guesses of one address at once; the others are refused unchecked`, async () => {
    const authenticator = heldAuthenticator();
    const gate = createAuthGate(authenticator);
    const guesses = Array.from({ length: 3 * MAX_FAILED_ATTEMPTS_PER_MINUTE }, (_, guess) =>
      gate.check('192.0.2.7', `guess ${guess}`),
    );
    // The right one, sent while the others wait: it must not be let in either.
    const right = gate.check('192.0.2.7', 'right');
    // Every check either began or was refused before this settles (the gate's own awaits are
    // microtasks): nothing is answered until answerAll.
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(
      authenticator.checked <= MAX_FAILED_ATTEMPTS_PER_MINUTE + 1,
      `${authenticator.checked} guesses checked at once`,
    );
    authenticator.answerAll();
    const verdicts = await Promise.all([...guesses, right]);
    assert.ok(verdicts.every((verdict) => !verdict.allowed));
    assert.equal((await right).allowed, false);
    // Another address is not held back by this one's guesses.
    const other = gate.check('192.0.2.8', 'right');
    await new Promise((resolve) => setImmediate(resolve));
    authenticator.answerAll();
    assert.equal((await other).allowed, true);
  });

  it('counts an IPv6 /64 as one address, and an IPv4 address however it is written', async () => {
    const authenticator = heldAuthenticator();
    const gate = createAuthGate(authenticator);
    const fail = async (address: string) => {
      const verdict = gate.check(address, 'wrong');
      await new Promise((resolve) => setImmediate(resolve));
      authenticator.answerAll();
      return verdict;
    };
    const right = async (address: string) => {
      const verdict = gate.check(address, 'right');
      await new Promise((resolve) => setImmediate(resolve));
      authenticator.answerAll();
      return (await verdict).allowed;
    };
    // A new address of the /64 for every guess, as a host with privacy addresses may.
    for (let guess = 1; guess <= MAX_FAILED_ATTEMPTS_PER_MINUTE + 1; guess++)
      await fail(`2001:db8:5:0:${guess.toString(16)}::1`);
    assert.equal(await right('2001:db8:5::ffff'), false, 'another address of the same /64');
    assert.equal(await right('2001:db8:6::1'), true, 'another /64');
    for (let guess = 1; guess <= MAX_FAILED_ATTEMPTS_PER_MINUTE + 1; guess++)
      await fail(guess % 2 === 0 ? '192.0.2.9' : '::ffff:192.0.2.9');
    assert.equal(await right('192.0.2.9'), false);
    assert.equal(await right('::ffff:192.0.2.10'), true);
  });
});

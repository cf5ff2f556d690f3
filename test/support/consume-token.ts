/**
 * Child process for the cross-process redemption race in test/pki/store.test.ts: opens the store,
 * says `ready`, waits for a line on stdin (so all children fire together), consumes the token once
 * and prints the outcome as one JSON line.
 */
import { createInterface } from 'node:readline';
import { openPkiStore } from '../../pki/store.ts';
import { DmzError } from '../../relay/protocol/errors.ts';

const [stateDir, jti, nowMs] = process.argv.slice(2);
if (stateDir === undefined || jti === undefined || nowMs === undefined) {
  throw new Error('usage: consume-token.ts <stateDir> <jti> <nowMs>');
}
const store = openPkiStore(stateDir);
const lines = createInterface({ input: process.stdin });
lines.once('line', () => {
  let outcome: { ok: true } | { code: string };
  try {
    store.consumeToken(jti, new Date(Number(nowMs)));
    outcome = { ok: true };
  } catch (err) {
    outcome = { code: err instanceof DmzError ? err.code : String(err) };
  }
  store.close();
  // Let the process exit even if the parent keeps its end of stdin open.
  lines.close();
  process.stdin.destroy();
  process.stdout.write(`${JSON.stringify(outcome)}\n`);
});
process.stdout.write('ready\n');

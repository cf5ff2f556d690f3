/**
 * The IT agent's write audit flooded by refusals (agents/it/write-audit.ts): a user who may only
 * read can ask for writes as fast as the API answers, each refused and audited; the log is rotated
 * at 64 MiB and keeps one old file, so unbounded refusals would push the lines of real writes out
 * of it. Per user a minute, MAX_AUDITED_REFUSALS_PER_MINUTE are written whole, the rest counted
 * and the count written with the user's next line; writes are audited whatever the refusals.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { AUDIT_FILE } from '../../../../agents/ot/writes/audit-log.ts';
import {
  API_AUDIT_DIR,
  AuditedWrites,
  MAX_AUDITED_REFUSALS_PER_MINUTE,
} from '../../../../agents/it/write-audit.ts';
import { ManualClock } from '../../../support/manual-clock.ts';

const ASKED = { topic: 'press-7/plc/speed', value: 99 } as const;

describe('agents/it/api - the write audit flooded by refusals', () => {
  it(`writes ${MAX_AUDITED_REFUSALS_PER_MINUTE} refusals of a user a minute, counts the rest, and says how many with the next`, async (t) => {
    const state = await mkdtemp(join(tmpdir(), 'dmz-audit-flood-'));
    t.after(() => rm(state, { recursive: true, force: true }));
    const clock = new ManualClock(Date.parse('2026-12-01T18:00:00Z'));
    // The audit is what is tested: the write itself is the plant's (users.test.ts).
    const client = {
      write: () => Promise.resolve({ status: 'done' as const, code: undefined, message: 'written' }),
    };
    const writes = await AuditedWrites.open({
      state,
      client,
      logger: pino({ level: 'silent' }),
      now: () => clock.now(),
    });
    const flood = 10 * MAX_AUDITED_REFUSALS_PER_MINUTE;
    for (let attempt = 0; attempt < flood; attempt++)
      await writes.refuse('ben', ASKED, 'AGENT_ERR_API_FORBIDDEN', 'role read');
    // Another user's refusals, and a real write, are written whatever ben does.
    await writes.refuse('carl', ASKED, 'AGENT_ERR_WRITE_READ_ONLY', 'not offered');
    await writes.write('ada', { agent: 'press-7', ...ASKED });
    await clock.advance(61_000);
    await writes.refuse('ben', ASKED, 'AGENT_ERR_API_FORBIDDEN', 'role read');
    await writes.close();

    const lines = (await readFile(join(state, API_AUDIT_DIR, AUDIT_FILE), 'utf8'))
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const ben = lines.filter((line) => line.user === 'ben');
    assert.equal(ben.length, MAX_AUDITED_REFUSALS_PER_MINUTE + 1);
    assert.equal(ben.at(-1)?.unwrittenRefusals, flood - MAX_AUDITED_REFUSALS_PER_MINUTE);
    assert.ok(ben.slice(0, -1).every((line) => line.unwrittenRefusals === undefined));
    assert.deepEqual(
      lines.filter((line) => line.user !== 'ben').map((line) => [line.user, line.outcome]),
      [
        ['carl', 'refused'],
        ['ada', 'sending'],
        ['ada', 'done'],
      ],
    );
  });
});

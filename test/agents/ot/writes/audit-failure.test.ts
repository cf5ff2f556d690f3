/**
 * The audit log fails closed: a command that passed every check is in the audit log before the
 * device is written, so a log that cannot be written (a full disk, a file someone replaced)
 * refuses the write and the device keeps its value; once the log can be written again, writes go.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AUDIT_FILE } from '../../../../agents/ot/writes/audit-log.ts';
import { writesDir } from '../../../../agents/ot/writes/write-window.ts';
import { AGENT } from '../sources/modbus/modbus-fixture.ts';
import {
  claimsFor,
  outcomeOf,
  SETPOINT,
  startInProcessWrites,
  unsigned,
  type InProcessWrites,
} from './write-fixture.ts';

describe('the write audit log', () => {
  let writes: InProcessWrites;
  let auditPath: string;

  before(async () => {
    writes = await startInProcessWrites({}, async (state) => {
      auditPath = join(writesDir(state), AUDIT_FILE);
      // Where the log's file should be, something it cannot append to.
      await mkdir(auditPath, { recursive: true });
    });
  });
  after(() => writes?.close());

  const command = (value: number) =>
    unsigned(claimsFor('hmi-1', 'setpoint', value, { aud: AGENT, topic: `${AGENT}/plc/setpoint` }));

  it('that cannot be written refuses the write, and the device keeps its value', async () => {
    writes.device.setHolding(SETPOINT, [7]);
    const from = writes.device.requests.length;
    assert.equal(await outcomeOf(writes.request(1, command(42))), 'AGENT_ERR_WRITE_STORAGE');
    assert.equal(writes.device.holding[SETPOINT], 7);
    assert.deepEqual(
      writes.device.requestsSince(from).filter((request) => request.functionCode === 6),
      [],
    );
    assert.deepEqual(writes.service.stats().failed, { AGENT_ERR_WRITE_STORAGE: 1 });
  });

  it('takes writes again once it can be written, each in it before and after the device write', async () => {
    await rm(auditPath, { recursive: true });
    assert.equal(await outcomeOf(writes.request(2, command(43))), 'done');
    assert.equal(writes.device.holding[SETPOINT], 43);
    const entries = (await readFile(auditPath, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { outcome: string; value: number });
    assert.deepEqual(
      entries.map(({ outcome, value }) => [outcome, value]),
      [
        ['executing', 43],
        ['done', 43],
      ],
    );
  });
});

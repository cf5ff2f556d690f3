/**
 * A write that waits for the device must not go out after its command's deadline: the OT agent
 * checks the deadline before it hands the write to the source, but the write then waits its turn
 * behind a slow read (or a reconnect), and the IT side has been told by then that the write "will
 * not be done later". The source's manual clock moves the deadline past while a real device holds
 * the read in front of the write.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ModbusTestDevice } from '../../../support/modbus-device.ts';
import { waitFor } from '../../../support/wait.ts';
import { AGENT, startModbusSource } from '../sources/modbus/modbus-fixture.ts';

const WRITE_FUNCTIONS = new Set([5, 6, 15, 16]);
const SETPOINT = 10;

describe('a write queued behind a slow device read', () => {
  let device: ModbusTestDevice;

  before(async () => {
    device = await ModbusTestDevice.start();
  });
  after(() => device.down());

  const source = () =>
    startModbusSource([
      {
        host: device.host,
        port: device.port,
        pollInterval: '1s',
        timeout: '5s',
        points: [{ name: 'setpoint', table: 'holding', address: SETPOINT }],
      },
    ]);

  for (const late of [false, true]) {
    it(
      late
        ? 'is never sent once its deadline passed while it waited (AGENT_ERR_WRITE_EXPIRED)'
        : 'is sent when its turn comes before its deadline',
      async () => {
        device.setHolding(SETPOINT, [7]);
        const run = source();
        try {
          await run.cycle();
          const clock = run.clock;
          assert.ok(clock !== undefined && run.source.write !== undefined);
          const release = device.hold();
          const sent = device.requests.length;
          // The next poll's read goes out and the device sits on it.
          await clock.advance(1000);
          await waitFor(() => device.requests.length > sent, 'the poll read at the device');
          const deadline = clock.now() + 500;
          const outcome = run.source.write(`${AGENT}/plc/setpoint`, 42, deadline);
          // Still under the request timeout (5 s): the read is slow, not lost.
          if (late) await clock.advance(800);
          release();
          const result = await outcome;
          const writes = device.requestsSince(sent).filter((r) => WRITE_FUNCTIONS.has(r.functionCode));
          if (late) {
            assert.deepEqual(result.ok ? 'done' : result.code, 'AGENT_ERR_WRITE_EXPIRED');
            assert.equal(writes.length, 0, 'no write request reached the device');
            assert.equal(device.holding[SETPOINT], 7);
          } else {
            assert.deepEqual(result, { ok: true });
            assert.equal(device.holding[SETPOINT], 42);
          }
        } finally {
          await run.stop();
        }
      },
    );
  }
});

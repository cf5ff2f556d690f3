/**
 * The Modbus source against a Modbus server that is not modbus-serial's own: Debian's
 * python3-pymodbus, in its own process (test/system/pymodbus-server.py). Every type and order, the
 * requests the server saw per cycle, deadband and heartbeat, an exception, a device that stops and
 * starts again, one down at start, one that hangs (SIGSTOP), and writes of each kind. Run by `npm run test:modbus` (in
 * .ci/run, which installs python3-pymodbus), not by `npm test`; skipped, saying why, where
 * python3-pymodbus is not installed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../support/ports.ts';
import { pymodbusMissing, PymodbusDevice, type PymodbusData } from '../support/pymodbus-device.ts';
import { waitFor } from '../support/wait.ts';
import { startModbusSource, T0 } from '../agents/ot/sources/modbus/modbus-fixture.ts';
import { valuePoints } from '../agents/ot/sources/modbus/value-table.ts';

const missing = pymodbusMissing();
if (missing !== undefined) console.log(`# skipping the pymodbus system test: ${missing}`);

const VALUES = valuePoints(100);
const DATA: PymodbusData = {
  holding: {
    ...Object.fromEntries(VALUES.map(({ address, testCase }) => [String(address), testCase.registers])),
    '600': [11],
    '610': [22],
  },
  input: { '7': [215] },
  coils: { '3': [1] },
  discrete: { '4': [1] },
  illegal: { holding: [610] },
};
/** Function codes (spec 6). */
const READ_HOLDING = 3;
const READ_COILS = 1;

describe('modbus source against pymodbus (Debian python3-pymodbus)', { skip: missing }, () => {
  let device: PymodbusDevice;
  before(async () => {
    device = await PymodbusDevice.start(DATA);
  });
  after(async () => {
    await device.close();
  });
  const host = () => ({ host: device.host, port: device.port });
  const readsSince = (from: number) =>
    device.requests
      .slice(from)
      .filter((request) => request.functionCode === READ_HOLDING || request.functionCode === READ_COILS);

  it('reads every type in every byte and word order exactly, and inputs, coils, discrete inputs', async () => {
    const run = startModbusSource([
      {
        ...host(),
        points: [
          ...VALUES.map(({ point }) => point),
          { name: 'scaled', table: 'input', address: 7, type: 'int16', scale: 0.1, offset: -40 },
          { name: 'running', table: 'coil', address: 3 },
          { name: 'door', table: 'discrete', address: 4 },
        ],
      },
    ]);
    try {
      await run.cycle();
      const latest = run.output.latest();
      for (const { testCase } of VALUES) {
        assert.deepEqual(
          latest.get(testCase.name),
          { value: testCase.expected, quality: 'good', sourceTime: T0 },
          testCase.name,
        );
      }
      assert.equal(latest.get('scaled')?.value, -18.5);
      assert.equal(latest.get('running')?.value, true);
      assert.equal(latest.get('door')?.value, true);
    } finally {
      await run.stop();
    }
  });

  it('sends the planned, coalesced requests, and the server sees exactly those each cycle', async () => {
    const run = startModbusSource([
      {
        ...host(),
        maxGap: 4,
        points: [
          ...Array.from({ length: 300 }, (_, index) => ({
            name: `r${index}`,
            table: 'holding',
            address: 1_000 + index,
          })),
          { name: 'far', table: 'holding', address: 1_400, type: 'float32' },
          ...Array.from({ length: 10 }, (_, index) => ({
            name: `c${index}`,
            table: 'coil',
            address: index * 3,
          })),
        ],
      },
    ]);
    try {
      const planned = [
        [READ_HOLDING, 1_000, 125],
        [READ_HOLDING, 1_125, 125],
        [READ_HOLDING, 1_250, 50],
        [READ_HOLDING, 1_400, 2],
        [READ_COILS, 0, 28],
      ];
      assert.equal(run.source.stats().devices[0]?.requestsPerCycle, planned.length);
      for (let cycle = 0; cycle < 2; cycle++) {
        const from = device.requests.length;
        await run.cycle();
        // The server prints each request as it takes it; the pipe may lag the answer a little.
        const seen = await waitFor(
          () => readsSince(from).length >= planned.length && readsSince(from),
          'the log lines',
        );
        assert.deepEqual(
          seen.map((request) => [request.functionCode, request.address, request.count]),
          planned,
        );
      }
    } finally {
      await run.stop();
    }
  });

  it('reports by exception with a deadband, and at the heartbeat, while an HMI writes the register', async () => {
    await device.writeHolding(200, [1000]);
    const run = startModbusSource([
      {
        ...host(),
        heartbeat: '4s',
        points: [{ name: 'flow', table: 'holding', address: 200, deadband: { percent: 1 } }],
      },
    ]);
    try {
      for (const value of [1000, 1005, 1011, 1011, 1011, 1011, 1011]) {
        await device.writeHolding(200, [value]);
        await run.cycle();
      }
      assert.deepEqual(
        run.output.readingsOf('flow').map((reading) => [reading.value, reading.sourceTime - T0]),
        [
          [1000, 0],
          [1011, 2_000],
          [1011, 6_000],
        ],
      );
    } finally {
      await run.stop();
    }
  });

  it('gives bad quality "Modbus exception 2" for an illegal address, and keeps its other points good', async () => {
    const run = startModbusSource([
      {
        ...host(),
        maxGap: 0,
        points: [
          { name: 'fine', table: 'holding', address: 600 },
          { name: 'missing', table: 'holding', address: 610 },
        ],
      },
    ]);
    try {
      await run.cycle();
      const latest = run.output.latest();
      assert.deepEqual(latest.get('missing'), {
        value: 0,
        quality: 'bad',
        reason: 'Modbus exception 2',
        sourceTime: T0,
      });
      assert.deepEqual(latest.get('fine'), { value: 11, quality: 'good', sourceTime: T0 });
    } finally {
      await run.stop();
    }
  });

  it('writes a register (function 6), a float32 in word order (16) and a coil (5), read back by the next poll; an illegal address is the device exception', async () => {
    const run = startModbusSource([
      {
        ...host(),
        points: [
          { name: 'setpoint', table: 'holding', address: 700, type: 'int16', scale: 0.1 },
          { name: 'flow', table: 'holding', address: 702, type: 'float32', wordOrder: 'little' },
          { name: 'start', table: 'coil', address: 9 },
          { name: 'refused', table: 'holding', address: 610 },
        ],
      },
    ]);
    const write = (name: string, value: number | boolean) => {
      assert.ok(run.source.write !== undefined && run.clock !== undefined);
      return run.source.write(`press-7/plc/${name}`, value, run.clock.now() + 10_000);
    };
    try {
      await run.cycle();
      const from = device.requests.length;
      assert.deepEqual(await write('setpoint', -12.5), { ok: true });
      assert.deepEqual(await write('flow', 3.75), { ok: true });
      assert.deepEqual(await write('start', true), { ok: true });
      const refused = await write('refused', 1);
      assert.equal(refused.ok ? 'done' : refused.code, 'AGENT_ERR_WRITE_DEVICE_EXCEPTION');
      assert.match(refused.ok ? '' : refused.message, /Modbus exception 2 \(illegal data address\)/);
      assert.deepEqual(
        device.requests.slice(from).map((request) => [request.functionCode, request.address]),
        [
          [6, 700],
          [16, 702],
          [5, 9],
          [6, 610],
        ],
      );
      await run.cycle();
      const latest = run.output.latest();
      assert.equal(latest.get('setpoint')?.value, -12.5);
      assert.equal(latest.get('flow')?.value, 3.75);
      assert.equal(latest.get('start')?.value, true);
    } finally {
      await run.stop();
    }
  });

  it('a device that stops goes bad, and comes back good when it starts again', async () => {
    const run = startModbusSource(
      [
        {
          ...host(),
          pollInterval: '50ms',
          timeout: '500ms',
          points: [{ name: 'fine', table: 'holding', address: 600 }],
        },
      ],
      true,
    );
    try {
      await waitFor(() => run.output.latest().get('fine')?.quality === 'good', 'a good reading');
      await device.down();
      const down = await waitFor(() => {
        const reading = run.output.latest().get('fine');
        return reading?.quality === 'bad' && reading;
      }, 'a bad reading');
      assert.match(down.reason ?? '', /^(connection lost|connection refused|connection reset)$/);
      await device.up();
      await waitFor(
        () => run.output.latest().get('fine')?.quality === 'good',
        'a good reading again',
        20_000,
      );
      assert.equal(run.output.latest().get('fine')?.value, 11);
    } finally {
      await run.stop();
    }
  });

  it('a hung device (SIGSTOP) times out to bad "timeout", and recovers after SIGCONT', async () => {
    const run = startModbusSource(
      [
        {
          ...host(),
          pollInterval: '50ms',
          timeout: '300ms',
          points: [{ name: 'fine', table: 'holding', address: 600 }],
        },
      ],
      true,
    );
    try {
      await waitFor(() => run.output.latest().get('fine')?.quality === 'good', 'a good reading');
      device.hang();
      await waitFor(() => run.output.latest().get('fine')?.reason === 'timeout', 'a bad "timeout" reading');
      device.answerAgain();
      await waitFor(
        () => run.output.latest().get('fine')?.quality === 'good',
        'a good reading again',
        20_000,
      );
      assert.ok((run.source.stats().devices[0]?.timeouts ?? 0) >= 1);
      assert.ok((run.source.stats().devices[0]?.connects ?? 0) >= 2, 'reconnected after the timeout');
    } finally {
      device.answerAgain();
      await run.stop();
    }
  });

  it('a device down at start is retried until it is up', async () => {
    const port = await freePort();
    const run = startModbusSource(
      [
        {
          host: '127.0.0.1',
          port,
          pollInterval: '50ms',
          points: [{ name: 'fine', table: 'holding', address: 600 }],
        },
      ],
      true,
    );
    let late: PymodbusDevice | undefined;
    try {
      await waitFor(() => run.output.latest().get('fine')?.reason === 'connection refused', 'a bad reading');
      late = await PymodbusDevice.start(DATA, { port });
      await waitFor(() => run.output.latest().get('fine')?.quality === 'good', 'a good reading', 20_000);
    } finally {
      await run.stop();
      await late?.close();
    }
  });
});

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createSource } from '../../../../../agents/ot/sources/registry.ts';
import { MIN_RETRY_DELAY_MS } from '../../../../../agents/ot/sources/source.ts';
import { ModbusTestDevice } from '../../../../support/modbus-device.ts';
import { freePort } from '../../../../support/ports.ts';
import { waitFor } from '../../../../support/wait.ts';
import { AGENT, RecordingOutput, startModbusSource, T0 } from './modbus-fixture.ts';
import { valuePoints } from './value-table.ts';

/** Function codes (spec 6): what the device's request log shows for each table. */
const READ_HOLDING = 3;
const READ_COILS = 1;

describe('modbus source against a real Modbus TCP server (modbus-serial ServerTCP)', () => {
  let device: ModbusTestDevice;
  before(async () => {
    device = await ModbusTestDevice.start();
  });
  after(async () => {
    await device.down();
  });
  const host = () => ({ host: device.host, port: device.port });

  it('reads every type in every byte and word order exactly, and coils, inputs and scaled values', async () => {
    const points = valuePoints(100);
    for (const { address, testCase } of points) device.setHolding(address, testCase.registers);
    device.input[7] = 215;
    device.coils[3] = 1;
    device.discrete[4] = 1;
    const run = startModbusSource([
      {
        ...host(),
        points: [
          ...points.map(({ point }) => point),
          {
            name: 'scaled',
            table: 'input',
            address: 7,
            type: 'int16',
            scale: 0.1,
            offset: -40,
            unit: 'degC',
          },
          { name: 'running', table: 'coil', address: 3 },
          { name: 'stopped', table: 'coil', address: 4 },
          { name: 'door', table: 'discrete', address: 4 },
        ],
      },
    ]);
    try {
      await run.cycle();
      const latest = run.output.latest();
      for (const { testCase } of points) {
        assert.deepEqual(
          latest.get(testCase.name),
          { value: testCase.expected, quality: 'good', sourceTime: T0 },
          testCase.name,
        );
      }
      assert.equal(latest.get('scaled')?.value, -18.5);
      assert.equal(latest.get('running')?.value, true);
      assert.equal(latest.get('stopped')?.value, false);
      assert.equal(latest.get('door')?.value, true);
      assert.deepEqual(run.source.topicMetadata.get(`${AGENT}/plc/scaled`), { unit: 'degC' });
    } finally {
      await run.stop();
    }
  });

  it('coalesces near registers into few requests, planned once: the server sees exactly the plan every cycle', async () => {
    const run = startModbusSource([
      {
        ...host(),
        maxGap: 4,
        points: [
          // 300 contiguous registers: 125 + 125 + 50.
          ...Array.from({ length: 300 }, (_, index) => ({
            name: `r${index}`,
            table: 'holding',
            address: 1_000 + index,
          })),
          // Within the gap of 4 of the last one: same request. Past it: a request of its own.
          { name: 'near', table: 'holding', address: 1_303 },
          { name: 'far', table: 'holding', address: 1_400, type: 'float32' },
          ...Array.from({ length: 20 }, (_, index) => ({
            name: `c${index}`,
            table: 'coil',
            address: index * 2,
          })),
        ],
      },
    ]);
    try {
      const planned = [
        { functionCode: READ_HOLDING, unitId: 1, address: 1_000, count: 125 },
        { functionCode: READ_HOLDING, unitId: 1, address: 1_125, count: 125 },
        { functionCode: READ_HOLDING, unitId: 1, address: 1_250, count: 54 },
        { functionCode: READ_HOLDING, unitId: 1, address: 1_400, count: 2 },
        { functionCode: READ_COILS, unitId: 1, address: 0, count: 39 },
      ];
      for (let cycle = 0; cycle < 3; cycle++) {
        const from = device.requests.length;
        await run.cycle();
        assert.deepEqual(device.requestsSince(from), planned, `cycle ${cycle}`);
      }
      const [stats] = run.source.stats().devices;
      assert.equal(stats?.requestsPerCycle, planned.length);
      assert.equal(stats?.requests, 3 * planned.length);
      assert.equal(stats?.connects, 1);
    } finally {
      await run.stop();
    }
  });

  it('reports by exception with a deadband, and sends an unchanged point at its heartbeat', async () => {
    device.holding[200] = 1000;
    device.holding[201] = 7;
    const run = startModbusSource([
      {
        ...host(),
        heartbeat: '5s',
        points: [
          { name: 'flow', table: 'holding', address: 200, deadband: { absolute: 10 } },
          { name: 'mode', table: 'holding', address: 201 },
        ],
      },
    ]);
    try {
      const values = [1000, 1005, 1009, 1011, 1011, 1011, 1011, 1011, 1011, 1030, 1030];
      for (const value of values) {
        device.holding[200] = value;
        await run.cycle();
      }
      // Sent: the first; 1011 (past 10 from 1000); the heartbeat 5 cycles after it; 1030.
      assert.deepEqual(
        run.output.readingsOf('flow').map((reading) => [reading.value, reading.sourceTime - T0]),
        [
          [1000, 0],
          [1011, 3_000],
          [1011, 8_000],
          [1030, 9_000],
        ],
      );
      // Never changed: only its heartbeats, every 5 s.
      assert.deepEqual(
        run.output.readingsOf('mode').map((reading) => reading.sourceTime - T0),
        [0, 5_000, 10_000],
      );
    } finally {
      await run.stop();
    }
  });

  it('gives bad quality "Modbus exception 2" for an illegal address, keeps the connection, and recovers', async () => {
    device.holding[600] = 11;
    device.holding[610] = 22;
    device.illegal.holding.add(610);
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
      assert.deepEqual(run.output.latest().get('missing'), {
        value: 0,
        quality: 'bad',
        reason: 'Modbus exception 2',
        sourceTime: T0,
      });
      assert.equal(run.output.latest().get('fine')?.quality, 'good');
      await run.cycle();
      assert.equal(run.output.readingsOf('missing').length, 1, 'a bad reading is sent once');
      device.illegal.holding.delete(610);
      await run.cycle();
      assert.deepEqual(run.output.latest().get('missing'), {
        value: 22,
        quality: 'good',
        sourceTime: T0 + 2_000,
      });
      const [stats] = run.source.stats().devices;
      assert.equal(stats?.exceptions, 2);
      assert.equal(stats?.connects, 1, 'an exception is an answer: the connection stays');
    } finally {
      device.illegal.holding.clear();
      await run.stop();
    }
  });

  it('a non-finite float is a bad reading, not a crash', async () => {
    device.setHolding(400, [0x7fc0, 0x0000]);
    const run = startModbusSource([
      { ...host(), points: [{ name: 'nan', table: 'holding', address: 400, type: 'float32' }] },
    ]);
    try {
      await run.cycle();
      assert.deepEqual(run.output.latest().get('nan'), {
        value: 0,
        quality: 'bad',
        reason: 'not a finite number',
        sourceTime: T0,
      });
    } finally {
      await run.stop();
    }
  });

  it('a write the log refuses is written again after a pause, before the next poll, and nothing is lost', async () => {
    device.holding[700] = 70;
    const run = startModbusSource([
      { ...host(), points: [{ name: 'kept', table: 'holding', address: 700 }] },
    ]);
    const clock = run.clock!;
    try {
      run.output.refusals = 1;
      const sent = device.requests.length;
      await clock.advance(0);
      await waitFor(() => run.source.stats().failedWrites === 1, 'the refused write');
      await clock.advance(MIN_RETRY_DELAY_MS);
      await waitFor(() => run.cycles() === 1, 'the cycle to end once its readings are durable');
      assert.deepEqual(run.output.readingsOf('kept'), [{ value: 70, quality: 'good', sourceTime: T0 }]);
      assert.equal(device.requests.length - sent, 1, 'no poll while a write is pending');
      assert.equal(run.source.stats().lastError?.code, 'AGENT_ERR_LOG_BUSY');
    } finally {
      await run.stop();
    }
  });

  it('connects from the configured local address (the NIC that faces the devices)', async () => {
    const run = startModbusSource([
      { ...host(), localAddress: '127.0.0.2', points: [{ name: 'x', table: 'holding', address: 0 }] },
    ]);
    try {
      await run.cycle();
      assert.ok(device.peers.includes('127.0.0.2'), `the device saw ${device.peers.join(', ')}`);
    } finally {
      await run.stop();
    }
  });
});

describe('modbus source when devices fail', () => {
  it('a device that goes down gives bad quality once, and its points come back when it does', async () => {
    const device = await ModbusTestDevice.start();
    device.holding[0] = 42;
    const run = startModbusSource([
      {
        host: device.host,
        port: device.port,
        heartbeat: '1m',
        points: [{ name: 'level', table: 'holding', address: 0 }],
      },
    ]);
    try {
      await run.cycle();
      await device.down();
      await waitFor(() => run.source.stats().devices[0]?.connected === false, 'the source to see the close');
      await run.cycle();
      await run.cycle();
      await device.up();
      await run.cycle();
      assert.deepEqual(run.output.readingsOf('level'), [
        { value: 42, quality: 'good', sourceTime: T0 },
        { value: 42, quality: 'bad', reason: 'connection refused', sourceTime: T0 + 1_000 },
        { value: 42, quality: 'good', sourceTime: T0 + 3_000 },
      ]);
      const [stats] = run.source.stats().devices;
      assert.equal(stats?.connects, 2);
      assert.equal(stats?.connectFailures, 2);
      assert.equal(stats?.reason, undefined);
      assert.match(
        run.source.stats().lastError?.message ?? '',
        /device 127\.0\.0\.1:\d+: connection refused/,
      );
    } finally {
      await run.stop();
      await device.down();
    }
  });

  it('a device down at start is retried until it is up', async () => {
    const port = await freePort();
    const run = startModbusSource([
      { host: '127.0.0.1', port, heartbeat: '2s', points: [{ name: 'level', table: 'holding', address: 5 }] },
    ]);
    let device: ModbusTestDevice | undefined;
    try {
      await run.cycle();
      await run.cycle();
      await run.cycle();
      device = await ModbusTestDevice.start(port);
      device.holding[5] = 9;
      await run.cycle();
      assert.deepEqual(run.output.readingsOf('level'), [
        { value: 0, quality: 'bad', reason: 'connection refused', sourceTime: T0 },
        // The heartbeat: still bad, still said.
        { value: 0, quality: 'bad', reason: 'connection refused', sourceTime: T0 + 2_000 },
        { value: 9, quality: 'good', sourceTime: T0 + 3_000 },
      ]);
    } finally {
      await run.stop();
      await device?.down();
    }
  });

  it('a hung device (accepts, never answers) times out to bad "timeout", reconnects, and recovers', async () => {
    const device = await ModbusTestDevice.start();
    device.holding[0] = 1;
    const run = startModbusSource([
      {
        host: device.host,
        port: device.port,
        timeout: '200ms',
        points: [{ name: 'level', table: 'holding', address: 0 }],
      },
    ]);
    const clock = run.clock!;
    try {
      await run.cycle();
      device.hung = true;
      const sent = device.requests.length;
      await clock.advance(1_000);
      await waitFor(() => device.requests.length > sent, 'the request to reach the hung device');
      await clock.advance(200);
      await waitFor(() => run.cycles() === 2, 'the cycle to end in a timeout');
      assert.equal(
        run.source.stats().devices[0]?.connected,
        false,
        'the connection is dropped after a timeout',
      );
      device.hung = false;
      device.holding[0] = 2;
      await clock.advance(800);
      await waitFor(() => run.cycles() === 3, 'the cycle after the device answers again');
      assert.deepEqual(run.output.readingsOf('level'), [
        { value: 1, quality: 'good', sourceTime: T0 },
        { value: 1, quality: 'bad', reason: 'timeout', sourceTime: T0 + 1_200 },
        { value: 2, quality: 'good', sourceTime: T0 + 2_000 },
      ]);
      const [stats] = run.source.stats().devices;
      assert.equal(stats?.timeouts, 1);
      assert.equal(stats?.connects, 2, 'a new connection (transaction ids start again)');
    } finally {
      await run.stop();
      await device.down();
    }
  });

  it('on real timers: a hung device times out and recovers, and stop() ends a request in flight at once', async () => {
    const device = await ModbusTestDevice.start();
    device.holding[0] = 5;
    const run = startModbusSource(
      [
        {
          host: device.host,
          port: device.port,
          pollInterval: '20ms',
          timeout: '500ms',
          points: [{ name: 'level', table: 'holding', address: 0 }],
        },
      ],
      true,
    );
    try {
      await waitFor(() => run.output.latest().get('level')?.quality === 'good', 'a good reading');
      device.hung = true;
      await waitFor(() => run.output.latest().get('level')?.reason === 'timeout', 'a bad "timeout" reading');
      device.hung = false;
      await waitFor(() => run.output.latest().get('level')?.quality === 'good', 'a good reading again');
      device.hung = true;
      const sent = device.requests.length;
      await waitFor(() => device.requests.length > sent, 'a request in flight');
      const stopping = Date.now();
      await run.stop();
      // The request's deadline is 500 ms away: stop must not wait for it.
      assert.ok(Date.now() - stopping < 250, 'stop does not wait for the timeout');
    } finally {
      await run.stop();
      await device.down();
    }
  });

  it('is a registry source: type modbus, its topics known before start', () => {
    const source = createSource(
      {
        type: 'modbus',
        name: 'plc',
        prefix: 'line1',
        devices: [
          { host: '127.0.0.1', points: [{ name: 'temp', table: 'input', address: 0, unit: 'degC' }] },
        ],
      } as never,
      { agentName: AGENT },
    );
    assert.equal(source.type, 'modbus');
    assert.deepEqual(source.topics, [`${AGENT}/line1/temp`]);
    source.start(new RecordingOutput());
    assert.throws(() => source.start(new RecordingOutput()), /started or stopped/);
    return source.stop();
  });
});

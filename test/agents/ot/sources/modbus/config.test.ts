import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  checkSourceConfig,
  checkSourceConfigs,
  validateSourceConfig,
} from '../../../../../agents/ot/sources/registry.ts';
import type { ModbusConfig } from '../../../../../agents/ot/sources/modbus/config.ts';
import { resolveDevices } from '../../../../../agents/ot/sources/modbus/register-map.ts';

const point = { name: 'temp', table: 'holding', address: 0 };

function section(
  device: Record<string, unknown> = {},
  points: unknown[] = [point],
  source: Record<string, unknown> = {},
) {
  return { type: 'modbus', name: 'plc', ...source, devices: [{ host: '10.0.0.5', ...device, points }] };
}

describe('modbus source config', () => {
  it('fills the defaults: port 502, unit 1, 1 s poll and timeout, 125 registers, 2000 bits, 1 min heartbeat', () => {
    const config = validateSourceConfig(section()) as ModbusConfig;
    const [device] = resolveDevices(config);
    assert.deepEqual(
      {
        name: device?.name,
        port: device?.port,
        unitId: device?.unitId,
        pollIntervalMs: device?.pollIntervalMs,
        timeoutMs: device?.timeoutMs,
        maxRegisters: device?.maxRegisters,
        maxBits: device?.maxBits,
        maxGap: device?.maxGap,
        maxBitGap: device?.maxBitGap,
      },
      {
        name: '10.0.0.5:502',
        port: 502,
        unitId: 1,
        pollIntervalMs: 1_000,
        timeoutMs: 1_000,
        maxRegisters: 125,
        maxBits: 2_000,
        maxGap: 8,
        maxBitGap: 64,
      },
    );
    const resolved = device?.points[0];
    assert.equal(resolved?.topic, 'plc/temp');
    assert.equal(resolved?.type, 'uint16');
    assert.equal(resolved?.heartbeatMs, 60_000);
    assert.equal(resolved?.byteOrder, 'big');
    assert.ok(Object.isFrozen(config));
  });

  it('takes a full point: type, orders, scale, offset, unit, deadband, heartbeat, local address', () => {
    const config = validateSourceConfig(
      section({ name: 'press', localAddress: '127.0.0.1', pollInterval: '100ms', heartbeat: '10s' }, [
        {
          name: 'line1/temp',
          table: 'input',
          address: 10,
          type: 'float32',
          byteOrder: 'little',
          wordOrder: 'little',
          scale: 0.1,
          offset: -40,
          unit: 'degC',
          deadband: { percent: 2 },
          heartbeat: '30s',
        },
        { name: 'running', table: 'coil', address: 3 },
      ]),
    ) as ModbusConfig;
    const [device] = resolveDevices(config);
    assert.equal(device?.localAddress, '127.0.0.1');
    assert.deepEqual(device?.points[0]?.deadband, { kind: 'percent', amount: 2 });
    assert.equal(device?.points[0]?.heartbeatMs, 30_000);
    assert.equal(device?.points[0]?.count, 2);
    assert.equal(device?.points[1]?.type, 'bit');
    assert.equal(device?.points[1]?.heartbeatMs, 10_000);
  });

  const refusals: { name: string; section: unknown; path: string; message: RegExp }[] = [
    {
      name: 'unknown device key',
      section: section({ slave: 1 }),
      path: '/devices/0/slave',
      message: /unknown key/,
    },
    {
      name: 'unit id past 255',
      section: section({ unitId: 256 }),
      path: '/devices/0/unitId',
      message: /255/,
    },
    {
      name: 'more than 125 registers a request',
      section: section({ maxRegisters: 126 }),
      path: '/devices/0/maxRegisters',
      message: /125/,
    },
    {
      name: 'more than 2000 bits a request',
      section: section({ maxBits: 2001 }),
      path: '/devices/0/maxBits',
      message: /2000/,
    },
    {
      name: 'a gap as wide as a request',
      section: section({ maxRegisters: 10, maxGap: 10 }),
      path: '/devices/0/maxGap',
      message: /below maxRegisters/,
    },
    {
      name: 'a local address that is a name',
      section: section({ localAddress: 'eth0' }),
      path: '/devices/0/localAddress',
      message: /IP address/,
    },
    {
      name: 'a host with a space',
      section: section({ host: 'plc 1' }),
      path: '/devices/0/host',
      message: /host name/,
    },
    {
      name: 'a poll interval of 1 ms',
      section: section({ pollInterval: '1ms' }),
      path: '/devices/0/pollInterval',
      message: /from 10ms/,
    },
    {
      name: 'a timeout of 2 minutes',
      section: section({ timeout: '2m' }),
      path: '/devices/0/timeout',
      message: /to 1m/,
    },
    {
      name: 'a heartbeat shorter than the poll',
      section: section({ pollInterval: '5s', heartbeat: '1s' }),
      path: '/devices/0/heartbeat',
      message: /from 5s/,
    },
    {
      name: 'an unknown table',
      section: section({}, [{ ...point, table: 'register' }]),
      path: '/devices/0/points/0/table',
      message: /holding, input, coil, discrete/,
    },
    {
      name: 'an address past 65535',
      section: section({}, [{ ...point, address: 65_536 }]),
      path: '/devices/0/points/0/address',
      message: /65535/,
    },
    {
      name: 'a float64 past the last address',
      section: section({}, [{ ...point, address: 65_533, type: 'float64' }]),
      path: '/devices/0/points/0/address',
      message: /run past/,
    },
    {
      name: 'a number in a coil table',
      section: section({}, [{ ...point, table: 'coil', type: 'int16' }]),
      path: '/devices/0/points/0/type',
      message: /must be bit/,
    },
    {
      name: 'a bit in a register without its number',
      section: section({}, [{ ...point, type: 'bit' }]),
      path: '/devices/0/points/0/bit',
      message: /required/,
    },
    {
      name: 'bit 16',
      section: section({}, [{ ...point, type: 'bit', bit: 16 }]),
      path: '/devices/0/points/0/bit',
      message: /15/,
    },
    {
      name: 'a bit number on a coil',
      section: section({}, [{ ...point, table: 'coil', bit: 1 }]),
      path: '/devices/0/points/0/bit',
      message: /does not apply/,
    },
    {
      name: 'a string without its length',
      section: section({}, [{ ...point, type: 'string' }]),
      path: '/devices/0/points/0/length',
      message: /required/,
    },
    {
      name: 'a length on a number',
      section: section({}, [{ ...point, length: 2 }]),
      path: '/devices/0/points/0/length',
      message: /does not apply/,
    },
    {
      name: 'a word order on a 16-bit value',
      section: section({}, [{ ...point, wordOrder: 'little' }]),
      path: '/devices/0/points/0/wordOrder',
      message: /does not apply/,
    },
    {
      name: 'a byte order on a coil',
      section: section({}, [{ ...point, table: 'coil', byteOrder: 'little' }]),
      path: '/devices/0/points/0/byteOrder',
      message: /does not apply/,
    },
    {
      name: 'a scale of 0',
      section: section({}, [{ ...point, scale: 0 }]),
      path: '/devices/0/points/0/scale',
      message: /other than 0/,
    },
    {
      name: 'a scale on a bit',
      section: section({}, [{ ...point, table: 'coil', scale: 2 }]),
      path: '/devices/0/points/0/scale',
      message: /not a number/,
    },
    {
      name: 'a deadband on text',
      section: section({}, [{ ...point, type: 'string', length: 2, deadband: { absolute: 1 } }]),
      path: '/devices/0/points/0/deadband',
      message: /not a number/,
    },
    {
      name: 'both deadbands',
      section: section({}, [{ ...point, deadband: { absolute: 1, percent: 1 } }]),
      path: '/devices/0/points/0/deadband',
      message: /exactly one/,
    },
    {
      name: 'a deadband over 100 percent',
      section: section({}, [{ ...point, deadband: { percent: 101 } }]),
      path: '/devices/0/points/0/deadband/percent',
      message: /100/,
    },
    {
      name: 'a string longer than 64 registers',
      section: section({}, [{ ...point, type: 'string', length: 65 }]),
      path: '/devices/0/points/0/length',
      message: /64/,
    },
    {
      name: 'a float64 wider than the device reads',
      section: section({ maxRegisters: 2, maxGap: 0 }, [{ ...point, type: 'float64' }]),
      path: '/devices/0/points/0',
      message: /maxRegisters/,
    },
    {
      name: 'a point name that is no topic',
      section: section({}, [{ ...point, name: 'a//b' }]),
      path: '/devices/0/points/0/name',
      message: /not a valid topic/,
    },
    {
      name: 'two points of one name',
      section: section({}, [point, { ...point, address: 1 }]),
      path: '/devices/0/points/1/name',
      message: /already used at \/devices\/0\/points\/0\/name/,
    },
    {
      name: 'two devices of one name',
      section: {
        type: 'modbus',
        name: 'plc',
        devices: [
          { host: 'a', points: [point] },
          { host: 'a', points: [{ ...point, name: 'other' }] },
        ],
      },
      path: '/devices/1',
      message: /device name "a:502" is already used/,
    },
    {
      name: 'no devices',
      section: { type: 'modbus', name: 'plc', devices: [] },
      path: '/devices',
      message: /1/,
    },
    { name: 'a device without points', section: section({}, []), path: '/devices/0/points', message: /1/ },
  ];
  for (const refusal of refusals) {
    it(`refuses ${refusal.name}, naming the key`, () => {
      const issues = checkSourceConfig(structuredClone(refusal.section));
      const issue = issues.find((candidate) => candidate.path === refusal.path);
      assert.ok(issue, `an issue at ${refusal.path}, got ${JSON.stringify(issues)}`);
      assert.match(issue.message, refusal.message);
    });
  }

  it('is checked inside the agent config with full key paths', () => {
    const issues = checkSourceConfigs([section({ unitId: 300 })], '/ot/sources');
    assert.ok(
      issues.some((issue) => issue.path === '/ot/sources/0/devices/0/unitId'),
      JSON.stringify(issues),
    );
  });

  it('refuses more than 10,000 points in one source', () => {
    const points = Array.from({ length: 5_001 }, (_, index) => ({
      name: `p${index}`,
      table: 'holding',
      address: index,
    }));
    const issues = checkSourceConfig({
      type: 'modbus',
      name: 'plc',
      devices: [
        { host: 'a', points },
        { host: 'b', points: points.map((entry) => ({ ...entry, name: `q${entry.name}` })) },
      ],
    });
    assert.deepEqual(issues, [{ path: '/devices', message: 'hold at most 10000 points in all' }]);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ModbusConfig, ModbusPointConfig } from '../../../../../agents/ot/sources/modbus/config.ts';
import { resolveDevices } from '../../../../../agents/ot/sources/modbus/register-map.ts';
import { planRequests } from '../../../../../agents/ot/sources/modbus/request-plan.ts';
import { validateSourceConfig } from '../../../../../agents/ot/sources/registry.ts';

type PointSpec = Omit<ModbusPointConfig, 'name'>;

/** The plan of one device with these points, as [table, address, count] per request. */
function plan(
  points: readonly PointSpec[],
  device: Record<string, unknown> = {},
): [string, number, number][] {
  const config = validateSourceConfig({
    type: 'modbus',
    name: 'plc',
    devices: [
      {
        host: '127.0.0.1',
        ...device,
        points: points.map((point, index) => ({ name: `p${index}`, ...point })),
      },
    ],
  }) as ModbusConfig;
  const resolved = resolveDevices(config)[0]!;
  return planRequests(resolved.points, resolved).map((request) => [
    request.table,
    request.address,
    request.count,
  ]);
}

const holding = (address: number, extra: Partial<PointSpec> = {}): PointSpec => ({
  table: 'holding',
  address,
  ...extra,
});

describe('modbus request planner', () => {
  const cases: {
    name: string;
    points: PointSpec[];
    device?: Record<string, unknown>;
    requests: [string, number, number][];
  }[] = [
    {
      name: 'contiguous registers make one request',
      points: [holding(0), holding(1), holding(2, { type: 'float32' })],
      requests: [['holding', 0, 4]],
    },
    {
      name: 'points are sorted by address first',
      points: [holding(10), holding(0), holding(5)],
      requests: [['holding', 0, 11]],
    },
    {
      name: 'a gap within maxGap is read through',
      points: [holding(0), holding(9)],
      device: { maxGap: 8 },
      requests: [['holding', 0, 10]],
    },
    {
      name: 'a gap past maxGap splits',
      points: [holding(0), holding(10)],
      device: { maxGap: 8 },
      requests: [
        ['holding', 0, 1],
        ['holding', 10, 1],
      ],
    },
    {
      name: 'maxGap 0 reads only contiguous registers',
      points: [holding(0), holding(1), holding(3)],
      device: { maxGap: 0 },
      requests: [
        ['holding', 0, 2],
        ['holding', 3, 1],
      ],
    },
    {
      name: 'a request never passes 125 registers',
      points: Array.from({ length: 300 }, (_, index) => holding(index)),
      requests: [
        ['holding', 0, 125],
        ['holding', 125, 125],
        ['holding', 250, 50],
      ],
    },
    {
      name: "the device's lower maxRegisters holds, and a value is never split",
      points: [holding(0), holding(1), holding(2, { type: 'float64' })],
      device: { maxRegisters: 4, maxGap: 2 },
      requests: [
        ['holding', 0, 2],
        ['holding', 2, 4],
      ],
    },
    {
      name: 'bits of one register share it',
      points: [holding(7, { type: 'bit', bit: 0 }), holding(7, { type: 'bit', bit: 15 }), holding(7)],
      requests: [['holding', 7, 1]],
    },
    {
      name: 'tables are never mixed, each planned in address order',
      points: [
        { table: 'coil', address: 5 },
        { table: 'input', address: 0 },
        holding(0),
        { table: 'discrete', address: 0 },
        { table: 'coil', address: 0 },
      ],
      requests: [
        ['holding', 0, 1],
        ['input', 0, 1],
        ['coil', 0, 6],
        ['discrete', 0, 1],
      ],
    },
    {
      name: 'bits coalesce up to 2000 and by maxBitGap',
      points: [
        ...Array.from({ length: 2001 }, (_, index): PointSpec => ({ table: 'coil', address: index })),
        { table: 'coil', address: 2001 + 64 },
        { table: 'coil', address: 2001 + 64 + 66 },
      ],
      requests: [
        ['coil', 0, 2000],
        ['coil', 2000, 66],
        ['coil', 2131, 1],
      ],
    },
  ];
  for (const testCase of cases) {
    it(testCase.name, () => {
      assert.deepEqual(plan(testCase.points, testCase.device), testCase.requests);
    });
  }

  it('gives each point its offset into the request', () => {
    const config = validateSourceConfig({
      type: 'modbus',
      name: 'plc',
      devices: [
        {
          host: '127.0.0.1',
          points: [
            { name: 'b', table: 'holding', address: 12 },
            { name: 'a', table: 'holding', address: 10 },
          ],
        },
      ],
    }) as ModbusConfig;
    const device = resolveDevices(config)[0]!;
    const [request] = planRequests(device.points, device);
    assert.deepEqual(
      request?.points.map(({ point, offset }) => [point.name, offset]),
      [
        ['a', 0],
        ['b', 2],
      ],
    );
  });
});

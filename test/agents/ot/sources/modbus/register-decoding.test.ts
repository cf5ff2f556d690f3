import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateSourceConfig } from '../../../../../agents/ot/sources/registry.ts';
import type { ModbusConfig } from '../../../../../agents/ot/sources/modbus/config.ts';
import {
  decodeBit,
  decodeRegisters,
  toEngineering,
} from '../../../../../agents/ot/sources/modbus/register-decoding.ts';
import { resolveDevices, type ModbusPoint } from '../../../../../agents/ot/sources/modbus/register-map.ts';
import { VALUE_CASES, valuePoints } from './value-table.ts';

/** The points of the value table, resolved through the config as the source resolves them. */
function resolvedPoints(): ModbusPoint[] {
  const config = validateSourceConfig({
    type: 'modbus',
    name: 'plc',
    devices: [{ host: '127.0.0.1', points: valuePoints().map(({ point }) => point) }],
  }) as ModbusConfig;
  return [...(resolveDevices(config)[0]?.points ?? [])];
}

function registerBytes(registers: readonly number[]): Uint8Array {
  const bytes = Buffer.alloc(registers.length * 2);
  registers.forEach((register, index) => bytes.writeUInt16BE(register, index * 2));
  return bytes;
}

describe('modbus register decoding', () => {
  const points = resolvedPoints();
  for (const [index, testCase] of VALUE_CASES.entries()) {
    it(`decodes ${testCase.name} from its known registers`, () => {
      const point = points[index]!;
      assert.equal(point.count, testCase.registers.length);
      // The value's registers sit after two others, as in a coalesced response.
      const bytes = registerBytes([0x1111, 0x2222, ...testCase.registers, 0x3333]);
      assert.deepEqual(decodeRegisters(point, bytes, 2), testCase.expected);
    });
  }

  it('refuses registers that are not in the response', () => {
    const point = points[VALUE_CASES.findIndex((testCase) => testCase.type === 'float64')]!;
    assert.throws(() => decodeRegisters(point, registerBytes([1, 2, 3]), 0), RangeError);
  });

  it('reads coils and inputs by their offset into the response', () => {
    assert.equal(decodeBit([false, true, false], 1), true);
    assert.throws(() => decodeBit([true], 8), RangeError);
  });

  it('scales exactly: 215 * 0.1 reads 21.5, and an unscaled value is untouched', () => {
    assert.equal(toEngineering(215, { scale: 0.1, offset: 0 }), 21.5);
    assert.equal(toEngineering(3, { scale: 0.1, offset: 0 }), 0.3);
    assert.equal(toEngineering(1000, { scale: 0.01, offset: -40 }), -30);
    assert.equal(toEngineering(0.1, { scale: 1, offset: 0 }), 0.1);
    assert.equal(toEngineering(Math.fround(0.1), { scale: 1, offset: 0 }), Math.fround(0.1));
  });
});

/**
 * A write's registers against the same hand-written table the decoder is tested with
 * (value-table.ts): every type in every byte and word order, so a
 * write puts exactly the bytes a read of that value finds.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ModbusConfig } from '../../../../../agents/ot/sources/modbus/config.ts';
import { encodeWrite } from '../../../../../agents/ot/sources/modbus/register-encoding.ts';
import { resolveDevices, type ModbusPoint } from '../../../../../agents/ot/sources/modbus/register-map.ts';
import { validateSourceConfig } from '../../../../../agents/ot/sources/registry.ts';
import { VALUE_CASES, valuePoints } from './value-table.ts';

function resolve(points: readonly Record<string, unknown>[]): ModbusPoint[] {
  const config = validateSourceConfig({
    type: 'modbus',
    name: 'plc',
    devices: [{ host: '127.0.0.1', points }],
  }) as ModbusConfig;
  return [...(resolveDevices(config)[0]?.points ?? [])];
}

describe('modbus register encoding (writes)', () => {
  const points = resolve(valuePoints().map(({ point }) => point));
  for (const [index, testCase] of VALUE_CASES.entries()) {
    if (testCase.type === 'bit') continue; // A bit in a register is not writable on its own.
    if (typeof testCase.expected !== 'number' && typeof testCase.expected !== 'string') continue;
    it(`encodes ${testCase.name} into its known registers`, () => {
      const encoded = encodeWrite(points[index]!, testCase.expected as number | string);
      assert.ok(encoded.ok);
      assert.deepEqual(encoded.request, {
        table: 'holding',
        address: points[index]!.address,
        registers: testCase.registers,
      });
    });
  }

  const [scaled, int16, text, coil, micrometres, offsetScaled] = resolve([
    { name: 'scaled', table: 'holding', address: 0, type: 'int16', scale: 0.1, offset: -40 },
    { name: 'int16', table: 'holding', address: 1, type: 'int16' },
    { name: 'text', table: 'holding', address: 2, type: 'string', length: 2 },
    { name: 'coil', table: 'coil', address: 3 },
    // A position in mm held in micrometres: raw values near a billion.
    { name: 'micrometres', table: 'holding', address: 4, type: 'int32', scale: 0.001 },
    // A large offset with a small scale: the subtraction's rounding is the raw value's noise.
    { name: 'offset', table: 'holding', address: 6, type: 'int32', scale: 0.001, offset: 1_000_000 },
  ]) as [ModbusPoint, ModbusPoint, ModbusPoint, ModbusPoint, ModbusPoint, ModbusPoint];

  it('takes a step of a large scaled register, and one behind a large offset', () => {
    const raw = (encoded: ReturnType<typeof encodeWrite>) =>
      encoded.ok && encoded.request.table === 'holding' ? encoded.request.registers : encoded;
    assert.deepEqual(raw(encodeWrite(micrometres, 700_000.123)), [0x29b9, 0x277b]);
    assert.deepEqual(raw(encodeWrite(offsetScaled, 1_000_000.005)), [0, 5]);
  });

  it('unscales a value in engineering units: raw = (value - offset) / scale', () => {
    assert.deepEqual(encodeWrite(scaled, 21.5), {
      ok: true,
      request: { table: 'holding', address: 0, registers: [615] },
    });
  });

  it('writes a coil as its state', () => {
    assert.deepEqual(encodeWrite(coil, true), {
      ok: true,
      request: { table: 'coil', address: 3, state: true },
    });
  });

  const refusals = [
    {
      name: 'a value between two raw steps',
      point: scaled,
      value: 21.55,
      code: 'AGENT_ERR_WRITE_OUT_OF_RANGE',
    },
    {
      // 700000123.4 raw: not a step, however large the raw value (it was rounded and written).
      name: 'a value between two steps of a large int32',
      point: micrometres,
      value: 700_000.1234,
      code: 'AGENT_ERR_WRITE_OUT_OF_RANGE',
    },
    { name: 'a value past the type', point: int16, value: 40_000, code: 'AGENT_ERR_WRITE_OUT_OF_RANGE' },
    {
      name: 'a text longer than its registers',
      point: text,
      value: 'ABCDE',
      code: 'AGENT_ERR_WRITE_OUT_OF_RANGE',
    },
    { name: 'a text outside Latin-1', point: text, value: '€', code: 'AGENT_ERR_WRITE_OUT_OF_RANGE' },
    { name: 'a number to a coil', point: coil, value: 1, code: 'AGENT_ERR_WRITE_WRONG_TYPE' },
    { name: 'a string to a number register', point: int16, value: '1', code: 'AGENT_ERR_WRITE_WRONG_TYPE' },
  ] as const;
  for (const { name, point, value, code } of refusals) {
    it(`refuses ${name}`, () => {
      const encoded = encodeWrite(point, value);
      assert.equal(encoded.ok ? 'encoded' : encoded.code, code);
    });
  }
});

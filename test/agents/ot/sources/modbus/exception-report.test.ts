import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PointReading } from '../../../../../agents/points/point.ts';
import {
  ExceptionReport,
  type ReportPolicy,
} from '../../../../../agents/ot/sources/modbus/exception-report.ts';

const INTERVAL = 1_000;
const good = (value: number | string | boolean): Omit<PointReading, 'sourceTime'> => ({
  value,
  quality: 'good',
});
const bad = (reason: string): Omit<PointReading, 'sourceTime'> => ({ value: 0, quality: 'bad', reason });

/** Offers one reading per cycle (cycle k at k * INTERVAL); the cycles whose reading was sent. */
function sentCycles(
  policy: Partial<ReportPolicy>,
  readings: readonly Omit<PointReading, 'sourceTime'>[],
): number[] {
  const report = new ExceptionReport({
    type: 'float32',
    deadband: undefined,
    heartbeatMs: 3_600_000,
    ...policy,
  });
  const sent: number[] = [];
  readings.forEach((reading, cycle) => {
    const cycleAt = cycle * INTERVAL;
    if (report.offer({ ...reading, sourceTime: cycleAt }, cycleAt, cycleAt + INTERVAL)) sent.push(cycle);
  });
  return sent;
}

describe('modbus report by exception', () => {
  const cases: {
    name: string;
    policy: Partial<ReportPolicy>;
    readings: Omit<PointReading, 'sourceTime'>[];
    sent: number[];
  }[] = [
    {
      name: 'without a deadband every change is sent, no repeat',
      policy: {},
      readings: [good(1), good(1), good(1.5), good(1.5)],
      sent: [0, 2],
    },
    {
      name: 'an absolute deadband keeps changes within it back',
      policy: { deadband: { kind: 'absolute', amount: 0.5 } },
      readings: [good(10), good(10.5), good(9.6), good(10.6), good(10.7)],
      sent: [0, 3],
    },
    {
      name: 'the deadband counts from the last value sent, so a drift adds up',
      policy: { deadband: { kind: 'absolute', amount: 1 } },
      readings: [good(0), good(0.4), good(0.8), good(1.2), good(1.6)],
      sent: [0, 3],
    },
    {
      name: 'a percent deadband is a share of the last value sent',
      policy: { deadband: { kind: 'percent', amount: 10 } },
      // 10% of 200 is 20, then 10% of 221 is 22.1: 243 is within it, 244 is not.
      readings: [good(200), good(219), good(181), good(221), good(243), good(244)],
      sent: [0, 3, 5],
    },
    {
      name: 'a percent deadband sends any change from 0',
      policy: { deadband: { kind: 'percent', amount: 10 } },
      readings: [good(0), good(0), good(0.001)],
      sent: [0, 2],
    },
    {
      name: 'a quality change is sent once, and so is the recovery',
      policy: { deadband: { kind: 'absolute', amount: 100 } },
      readings: [good(1), bad('timeout'), bad('timeout'), bad('timeout'), good(1), good(1)],
      sent: [0, 1, 4],
    },
    {
      name: 'a new reason is news',
      policy: {},
      readings: [bad('timeout'), bad('connection refused'), bad('connection refused')],
      sent: [0, 1],
    },
    {
      name: 'the heartbeat sends an unchanged value in the last cycle before it would pass',
      policy: { heartbeatMs: 3 * INTERVAL },
      readings: Array.from({ length: 8 }, () => good(5)),
      sent: [0, 3, 6],
    },
    {
      name: 'a bad point repeats at the heartbeat',
      policy: { heartbeatMs: 2 * INTERVAL },
      readings: [bad('timeout'), bad('timeout'), bad('timeout'), bad('timeout'), bad('timeout')],
      sent: [0, 2, 4],
    },
    {
      name: 'a heartbeat that is not a whole number of cycles never lets the silence pass it',
      policy: { heartbeatMs: 2.5 * INTERVAL },
      readings: Array.from({ length: 7 }, () => good(5)),
      sent: [0, 2, 4, 6],
    },
    { name: 'bits: any change', policy: {}, readings: [good(false), good(false), good(true)], sent: [0, 2] },
    { name: 'text: any change', policy: {}, readings: [good('A'), good('A'), good('B')], sent: [0, 2] },
  ];
  for (const testCase of cases) {
    it(testCase.name, () => {
      assert.deepEqual(sentCycles(testCase.policy, testCase.readings), testCase.sent);
    });
  }

  it('a bad reading carries the last good value, or the type zero before any', () => {
    const report = new ExceptionReport({ type: 'bit', deadband: undefined, heartbeatMs: 60_000 });
    assert.equal(report.lastValue, false);
    report.offer({ value: true, quality: 'good', sourceTime: 0 }, 0, 1_000);
    report.offer({ value: false, quality: 'bad', reason: 'timeout', sourceTime: 1_000 }, 1_000, 2_000);
    assert.equal(report.lastValue, true);
    assert.equal(new ExceptionReport({ type: 'string', deadband: undefined, heartbeatMs: 1 }).lastValue, '');
    assert.equal(new ExceptionReport({ type: 'int16', deadband: undefined, heartbeatMs: 1 }).lastValue, 0);
  });
});

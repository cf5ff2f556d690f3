/**
 * Report by exception: a point's reading is sent when it says something new, and at least every
 * heartbeat, so that silence means "no change" and never "dead". New is:
 *   - the first reading;
 *   - a change of quality or of its reason (good -> bad "timeout", "timeout" -> "connection
 *     refused", bad -> good): sent once, not every cycle;
 *   - a good value that moved past the deadband since the last value sent (absolute: in engineering
 *     units; percent: of the last value sent, and any change from 0), or any change at all for a
 *     point without one, and for bits and text.
 * The deadband is measured from the last value sent, not the last one read, so a slow drift is
 * reported once it adds up.
 */
import type { PointReading, PointValue } from '../../../points/point.ts';
import type { ModbusPoint } from './register-map.ts';

interface Reported {
  readonly reading: PointReading;
  /** The scheduled time of the cycle that sent it. */
  readonly cycleAt: number;
}

export type ReportPolicy = Pick<ModbusPoint, 'type' | 'deadband' | 'heartbeatMs'>;

export class ExceptionReport {
  readonly #policy: ReportPolicy;
  #reported: Reported | undefined;
  #lastValue: PointValue;

  constructor(policy: ReportPolicy) {
    this.#policy = policy;
    this.#lastValue = zeroOf(policy.type);
  }

  /**
   * The value a bad reading carries: the last one read (a dashboard keeps showing it, marked
   * bad), or the type's zero (0, false, '') when there was none.
   */
  get lastValue(): PointValue {
    return this.#lastValue;
  }

  /**
   * True when `reading`, taken in the cycle scheduled at `cycleAt`, is to be sent; it then counts
   * as sent. The heartbeat is due in the last cycle before it would pass: when waiting for the next
   * cycle (`nextCycleAt`) would leave the point silent longer than its heartbeat.
   */
  offer(reading: PointReading, cycleAt: number, nextCycleAt: number): boolean {
    if (reading.quality === 'good') this.#lastValue = reading.value;
    const reported = this.#reported;
    const send =
      reported === undefined ||
      reported.reading.quality !== reading.quality ||
      reported.reading.reason !== reading.reason ||
      (reading.quality === 'good' && this.#changed(reported.reading.value, reading.value)) ||
      nextCycleAt - reported.cycleAt > this.#policy.heartbeatMs;
    if (send) this.#reported = { reading, cycleAt };
    return send;
  }

  #changed(previous: PointValue, next: PointValue): boolean {
    const { deadband } = this.#policy;
    if (typeof previous !== 'number' || typeof next !== 'number' || deadband === undefined) {
      return previous !== next;
    }
    const change = Math.abs(next - previous);
    if (deadband.kind === 'absolute') return change > deadband.amount;
    return previous === 0 ? change > 0 : change > (Math.abs(previous) * deadband.amount) / 100;
  }
}

function zeroOf(type: ReportPolicy['type']): PointValue {
  if (type === 'bit') return false;
  if (type === 'string') return '';
  return 0;
}

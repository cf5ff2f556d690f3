/**
 * The value of a write against the point's configured type and range: pure checks, no device.
 * What the device itself can hold (a register's width, a node's data type) the source checks.
 */
import { DmzError } from '../../../relay/protocol/errors.ts';
import type { WriteValue } from '../sources/source.ts';
import type { WritablePoint } from './config.ts';

/** Throws AGENT_ERR_WRITE_WRONG_TYPE or AGENT_ERR_WRITE_OUT_OF_RANGE unless `value` may be written. */
export function checkValue(point: WritablePoint, value: WriteValue): void {
  if (typeof value !== point.type)
    throw new DmzError(
      'AGENT_ERR_WRITE_WRONG_TYPE',
      `the point takes a ${point.type}, not a ${typeof value}`,
    );
  if (typeof value === 'number') {
    // JSON has no NaN or Infinity, but a number still has to be one a device can hold.
    if (!Number.isFinite(value)) throw new DmzError('AGENT_ERR_WRITE_OUT_OF_RANGE', 'not a finite number');
    if ((point.min !== undefined && value < point.min) || (point.max !== undefined && value > point.max)) {
      throw new DmzError(
        'AGENT_ERR_WRITE_OUT_OF_RANGE',
        `${value} is outside ${point.min ?? '-inf'} .. ${point.max ?? 'inf'}`,
      );
    }
  }
  if (point.values !== undefined && !point.values.includes(value)) {
    throw new DmzError('AGENT_ERR_WRITE_OUT_OF_RANGE', 'not one of the values the point allows');
  }
}

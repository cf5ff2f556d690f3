/**
 * The checks of a Modbus section that its schema cannot make: names that are topics and unique,
 * durations in range, keys that fit the point's table and type, points that fit the address space
 * and one request. Each problem names its key path.
 */
import { isIP } from 'node:net';
import { parseDuration } from '../../../../pki/duration.ts';
import type { ConfigIssue } from '../../../../relay/protocol/errors.ts';
import { checkDuration, checkTopicSegment, checkTopicText } from '../config-checks.ts';
import {
  MAX_ADDRESS,
  MAX_HEARTBEAT_MS,
  MAX_POINTS_PER_SOURCE,
  MAX_POLL_INTERVAL_MS,
  MAX_TIMEOUT_MS,
  MIN_POLL_INTERVAL_MS,
  MIN_TIMEOUT_MS,
  type ModbusConfig,
  type ModbusDeviceConfig,
  type ModbusPointConfig,
} from './config.ts';
import { deviceName, isRegisterTable, pointCount, pointType } from './register-map.ts';

/** A host name or an IP literal: letters, digits and the punctuation of DNS names and IPv6. */
const HOST_PATTERN = /^[A-Za-z0-9._:%-]+$/;
const NUMERIC_TYPES = new Set(['int16', 'uint16', 'int32', 'uint32', 'float32', 'float64']);
const MULTI_REGISTER_TYPES = new Set(['int32', 'uint32', 'float32', 'float64']);

/** Problems of a schema-valid Modbus section, with key paths under `at`. */
export function checkModbusConfig(config: ModbusConfig, at: string): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  checkTopicSegment(issues, `${at}/name`, config.name);
  const prefix = config.prefix ?? config.name;
  if (config.prefix !== undefined) checkTopicText(issues, `${at}/prefix`, config.prefix);
  const pointNames = new Map<string, string>();
  const deviceNames = new Map<string, string>();
  let total = 0;
  config.devices.forEach((device, index) => {
    const path = `${at}/devices/${index}`;
    checkDevice(issues, path, device);
    claim(
      issues,
      deviceNames,
      deviceName(device),
      `${path}${device.name === undefined ? '' : '/name'}`,
      'device',
    );
    const pollMs = parseDuration(device.pollInterval, { milliseconds: true });
    device.points.forEach((point, pointIndex) => {
      const pointPath = `${path}/points/${pointIndex}`;
      checkPoint(issues, pointPath, point, device, pollMs);
      if (checkTopicText(issues, `${pointPath}/name`, `${prefix}/${point.name}`)) {
        claim(issues, pointNames, point.name, `${pointPath}/name`, 'point');
      }
    });
    total += device.points.length;
  });
  if (total > MAX_POINTS_PER_SOURCE) {
    issues.push({ path: `${at}/devices`, message: `hold at most ${MAX_POINTS_PER_SOURCE} points in all` });
  }
  return issues;
}

function checkDevice(issues: ConfigIssue[], at: string, device: ModbusDeviceConfig): void {
  if (device.name !== undefined) checkTopicSegment(issues, `${at}/name`, device.name);
  if (!HOST_PATTERN.test(device.host)) {
    issues.push({ path: `${at}/host`, message: 'must be a host name or an IP address' });
  }
  if (device.localAddress !== undefined && isIP(device.localAddress) === 0) {
    issues.push({ path: `${at}/localAddress`, message: 'must be an IP address of this host' });
  }
  const pollMs = checkDuration(
    issues,
    `${at}/pollInterval`,
    device.pollInterval,
    MIN_POLL_INTERVAL_MS,
    MAX_POLL_INTERVAL_MS,
  );
  checkDuration(issues, `${at}/timeout`, device.timeout, MIN_TIMEOUT_MS, MAX_TIMEOUT_MS);
  checkDuration(
    issues,
    `${at}/heartbeat`,
    device.heartbeat,
    pollMs ?? MIN_POLL_INTERVAL_MS,
    MAX_HEARTBEAT_MS,
  );
  if (device.maxGap >= device.maxRegisters) {
    issues.push({ path: `${at}/maxGap`, message: `must be below maxRegisters (${device.maxRegisters})` });
  }
  if (device.maxBitGap >= device.maxBits) {
    issues.push({ path: `${at}/maxBitGap`, message: `must be below maxBits (${device.maxBits})` });
  }
}

function checkPoint(
  issues: ConfigIssue[],
  at: string,
  point: ModbusPointConfig,
  device: ModbusDeviceConfig,
  pollMs: number | undefined,
): void {
  const type = pointType(point);
  const registers = isRegisterTable(point.table);
  const notFor = (key: string, what: string) =>
    issues.push({ path: `${at}/${key}`, message: `does not apply to ${what}` });
  if (!registers && type !== 'bit') {
    issues.push({ path: `${at}/type`, message: `must be bit: a ${point.table} table holds single bits` });
  }
  if (type === 'bit' && registers && point.bit === undefined) {
    issues.push({ path: `${at}/bit`, message: 'is required: which bit of the register (0-15)' });
  }
  if (point.bit !== undefined && !(type === 'bit' && registers))
    notFor('bit', `a ${type} point in a ${point.table} table`);
  if (type === 'string' && point.length === undefined) {
    issues.push({ path: `${at}/length`, message: 'is required: the string length in registers' });
  }
  if (point.length !== undefined && type !== 'string') notFor('length', `a ${type} point`);
  if (point.byteOrder !== undefined && !registers) notFor('byteOrder', `a ${point.table} table`);
  if (point.wordOrder !== undefined && !MULTI_REGISTER_TYPES.has(type))
    notFor('wordOrder', `a ${type} point: it spans no more than one register, or is text`);
  if (!NUMERIC_TYPES.has(type)) {
    for (const key of ['scale', 'offset', 'deadband'] as const) {
      if (point[key] !== undefined) notFor(key, `a ${type} point: it is not a number`);
    }
  }
  if (point.scale !== undefined && !(Number.isFinite(point.scale) && point.scale !== 0)) {
    issues.push({ path: `${at}/scale`, message: 'must be a finite number other than 0' });
  }
  if (point.offset !== undefined && !Number.isFinite(point.offset)) {
    issues.push({ path: `${at}/offset`, message: 'must be a finite number' });
  }
  if (point.deadband !== undefined) {
    const keys = Object.keys(point.deadband).length;
    if (keys !== 1)
      issues.push({ path: `${at}/deadband`, message: 'must have exactly one of absolute or percent' });
    if (point.deadband.absolute !== undefined && !Number.isFinite(point.deadband.absolute)) {
      issues.push({ path: `${at}/deadband/absolute`, message: 'must be a finite number' });
    }
  }
  if (point.heartbeat !== undefined) {
    checkDuration(
      issues,
      `${at}/heartbeat`,
      point.heartbeat,
      pollMs ?? MIN_POLL_INTERVAL_MS,
      MAX_HEARTBEAT_MS,
    );
  }
  const count = pointCount(point);
  if (point.address + count - 1 > MAX_ADDRESS) {
    issues.push({
      path: `${at}/address`,
      message: `the point's ${count} registers run past address ${MAX_ADDRESS}`,
    });
  }
  if (registers && count > device.maxRegisters) {
    issues.push({
      path: at,
      message: `spans ${count} registers, more than the device's maxRegisters (${device.maxRegisters})`,
    });
  }
}

/** False (and an issue) when another device or point has the name already. */
function claim(
  issues: ConfigIssue[],
  names: Map<string, string>,
  name: string,
  at: string,
  what: string,
): boolean {
  const first = names.get(name);
  if (first !== undefined) {
    issues.push({ path: at, message: `${what} name "${name}" is already used at ${first}` });
    return false;
  }
  names.set(name, at);
  return true;
}

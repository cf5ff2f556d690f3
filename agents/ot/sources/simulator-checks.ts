/**
 * The checks of a simulator section that its schema cannot make: names that are topic segments and
 * unique, durations in range, keys that fit the signal, min below max, step values of one type.
 * Each problem names its key path.
 */
import type { ConfigIssue } from '../../../relay/protocol/errors.ts';
import { validateTopic } from '../../../relay/protocol/topics.ts';
import { formatDuration, parseDuration } from '../../../pki/duration.ts';
import { encodePoint } from '../../points/point.ts';
import {
  generatedName,
  MAX_INTERVAL_MS,
  MAX_PERIOD_MS,
  MAX_POINTS_PER_SOURCE,
  MAX_SIMULATED_STRING_BYTES,
  MIN_INTERVAL_MS,
  MIN_PERIOD_MS,
  SIGNAL_DEFAULTS,
  type Signal,
  type SignalConfig,
  type SimulatorConfig,
} from './simulator-config.ts';

/** Keys a signal takes besides `signal` and `unit`; any other signal key is a mistake worth naming. */
const SIGNAL_KEYS: Record<Signal, readonly string[]> = {
  sine: ['period', 'min', 'max'],
  ramp: ['min', 'max', 'step'],
  randomWalk: ['min', 'max', 'step', 'seed'],
  step: ['values', 'period'],
  toggle: ['period'],
};
const OPTIONAL_SIGNAL_KEYS = ['period', 'min', 'max', 'step', 'seed', 'values'] as const;

/** Problems of a schema-valid simulator section, with key paths under `at`. */
export function checkSimulatorConfig(config: SimulatorConfig, at: string): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  checkSegment(issues, `${at}/name`, config.name);
  if (config.prefix !== undefined) checkTopic(issues, `${at}/prefix`, config.prefix);
  checkDuration(issues, `${at}/interval`, config.interval, MIN_INTERVAL_MS, MAX_INTERVAL_MS);
  const names = new Map<string, string>();
  config.points.forEach((point, index) => {
    const path = `${at}/points/${index}`;
    checkSignal(issues, path, point);
    if (checkSegment(issues, `${path}/name`, point.name)) {
      claimName(issues, names, point.name, `${path}/name`);
    }
  });
  if (config.generate !== undefined) {
    checkSignal(issues, `${at}/generate`, config.generate);
    for (let index = 0; index < config.generate.count; index++) {
      if (!claimName(issues, names, generatedName(index), `${at}/generate`)) break;
    }
  }
  const total = config.points.length + (config.generate?.count ?? 0);
  if (total === 0) {
    issues.push({ path: `${at}/points`, message: 'needs at least one point (points or generate)' });
  }
  if (total > MAX_POINTS_PER_SOURCE) {
    issues.push({
      path: at,
      message: `holds at most ${MAX_POINTS_PER_SOURCE} points, declared and generated`,
    });
  }
  return issues;
}

function checkSignal(issues: ConfigIssue[], at: string, config: SignalConfig): void {
  const allowed = SIGNAL_KEYS[config.signal];
  for (const key of OPTIONAL_SIGNAL_KEYS) {
    if (config[key] !== undefined && !allowed.includes(key)) {
      issues.push({ path: `${at}/${key}`, message: `does not apply to signal ${config.signal}` });
    }
  }
  if (config.period !== undefined) {
    checkDuration(issues, `${at}/period`, config.period, MIN_PERIOD_MS, MAX_PERIOD_MS);
  }
  const min = config.min ?? SIGNAL_DEFAULTS.min;
  const max = config.max ?? SIGNAL_DEFAULTS.max;
  if (min > max) issues.push({ path: `${at}/min`, message: `must not be above max (${max})` });
  if (config.signal === 'ramp') {
    for (const key of ['min', 'max'] as const) {
      if (config[key] !== undefined && !Number.isSafeInteger(config[key])) {
        issues.push({ path: `${at}/${key}`, message: 'must be an integer: a ramp is a counter' });
      }
    }
    if (config.step !== undefined && !(Number.isSafeInteger(config.step) && config.step >= 1)) {
      issues.push({ path: `${at}/step`, message: 'must be a whole number of at least 1' });
    }
  }
  if (config.signal === 'randomWalk' && config.step !== undefined && !(config.step > 0)) {
    issues.push({ path: `${at}/step`, message: 'must be above 0' });
  }
  if (config.signal === 'step') checkStepValues(issues, `${at}/values`, config.values ?? []);
}

function checkStepValues(
  issues: ConfigIssue[],
  at: string,
  values: readonly (number | string | boolean)[],
): void {
  if (values.length === 0) {
    issues.push({ path: at, message: 'must list at least one value' });
    return;
  }
  const kind = typeof values[0];
  values.forEach((value, index) => {
    if (typeof value !== kind) {
      issues.push({
        path: `${at}/${index}`,
        message: `must be a ${kind}, like the first value: a point has one type`,
      });
      return;
    }
    try {
      // The point model's own checks: a value it would refuse later is refused here, by key path.
      encodePoint({ value, quality: 'good', sourceTime: 0 });
      if (typeof value === 'string' && Buffer.byteLength(value) > MAX_SIMULATED_STRING_BYTES) {
        issues.push({ path: `${at}/${index}`, message: `longer than ${MAX_SIMULATED_STRING_BYTES} bytes` });
      }
    } catch (error) {
      issues.push({ path: `${at}/${index}`, message: (error as Error).message });
    }
  });
}

/** True when `name` is one topic segment. */
function checkSegment(issues: ConfigIssue[], at: string, name: string): boolean {
  if (name.includes('/')) {
    issues.push({ path: at, message: 'must be one topic segment (no "/")' });
    return false;
  }
  return checkTopic(issues, at, name);
}

function checkTopic(issues: ConfigIssue[], at: string, topic: string): boolean {
  try {
    validateTopic(topic);
    return true;
  } catch (error) {
    issues.push({ path: at, message: `not a valid topic: ${(error as Error).message}` });
    return false;
  }
}

function checkDuration(issues: ConfigIssue[], at: string, text: string, min: number, max: number): void {
  const ms = parseDuration(text, { milliseconds: true });
  if (ms === undefined || ms < min || ms > max) {
    issues.push({
      path: at,
      message: `must be a duration like 100ms, 5s or 1m, from ${formatDuration(min)} to ${formatDuration(max)}`,
    });
  }
}

/** False (and an issue) when another point has the name already. */
function claimName(issues: ConfigIssue[], names: Map<string, string>, name: string, at: string): boolean {
  const first = names.get(name);
  if (first !== undefined) {
    issues.push({ path: at, message: `point name "${name}" is already used at ${first}` });
    return false;
  }
  names.set(name, at);
  return true;
}

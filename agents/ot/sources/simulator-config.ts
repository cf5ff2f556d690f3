/**
 * The simulator source's config section: its schema, its limits, and the points it resolves to
 * (defaults filled in, generated load points added). The checks the schema cannot make are in
 * simulator-checks.ts.
 */
import { Type, type Static } from '@sinclair/typebox';
import { MAX_TOPIC_BYTES, MAX_TOPIC_SEGMENT_BYTES } from '../../../relay/protocol/limits.ts';
import { parseDuration } from '../../../pki/duration.ts';
import { MAX_READINGS_PER_WRITE } from './source.ts';

export const SIGNALS = ['sine', 'ramp', 'randomWalk', 'step', 'toggle'] as const;
export type Signal = (typeof SIGNALS)[number];

/**
 * Points in one simulator source, declared and generated. Each point is a stream of the log (at
 * most 65,536 per agent) and one write per round: 10,000 is a large simulated plant, and leaves
 * room in the log for other sources.
 */
export const MAX_POINTS_PER_SOURCE = 10_000;
/** One reading per millisecond per point at most: source times are whole milliseconds. */
export const MIN_INTERVAL_MS = 1;
/** A day: a point sampled less often than that shows nothing in a demo or a test. */
export const MAX_INTERVAL_MS = 86_400_000;
/** A signal's period: from a millisecond to 30 days (the longest plant cycle worth simulating). */
export const MIN_PERIOD_MS = 1;
export const MAX_PERIOD_MS = 30 * 86_400_000;
/**
 * A step signal's text values: tag text, short. A full write (MAX_READINGS_PER_WRITE readings of
 * ~75 bytes) then stays well inside one publish frame (1 MiB).
 */
export const MAX_SIMULATED_STRING_BYTES = 64;
/** The values a step signal cycles through: a mode or recipe list, not a table. */
export const MAX_STEP_VALUES = 256;
/** A unit is a symbol (`degC`, `m3/h`, `kPa`), not a description. */
export const MAX_UNIT_LENGTH = 32;

/** Defaults of a point that does not say (all signals alike, so they are easy to remember). */
export const SIGNAL_DEFAULTS = { min: 0, max: 100, step: 1, period: '60s' } as const;

const Duration = Type.String({ maxLength: 16 });
const StepValue = Type.Union([
  Type.Number(),
  Type.String({ maxLength: MAX_SIMULATED_STRING_BYTES }),
  Type.Boolean(),
]);

/** What shapes a signal; which keys apply depends on `signal` (SIGNAL_KEYS). */
const signalFields = {
  signal: Type.Union(SIGNALS.map((signal) => Type.Literal(signal))),
  /** sine: one whole wave; step: how long each value holds; toggle: how long each state holds. */
  period: Type.Optional(Duration),
  min: Type.Optional(Type.Number()),
  max: Type.Optional(Type.Number()),
  /** ramp: the increment (an integer); randomWalk: the largest change from one reading to the next. */
  step: Type.Optional(Type.Number()),
  /** randomWalk: the seed of its generator (default: derived from the point's name). */
  seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 0xffff_ffff })),
  /** step: the values it cycles through, all of one type. */
  values: Type.Optional(Type.Array(StepValue, { maxItems: MAX_STEP_VALUES })),
  /** Informational: kept in the source's topic metadata, never in the point encoding. */
  unit: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_UNIT_LENGTH })),
};

const SimulatedPointSchema = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: MAX_TOPIC_SEGMENT_BYTES }), ...signalFields },
  { additionalProperties: false },
);

/** `count` synthetic points `p0000`, `p0001`, ..., all of one signal: load for benchmarks. */
const GenerateSchema = Type.Object(
  { count: Type.Integer({ minimum: 1, maximum: MAX_POINTS_PER_SOURCE }), ...signalFields },
  { additionalProperties: false },
);

export const SimulatorConfigSchema = Type.Object(
  {
    type: Type.Literal('simulator'),
    /** The source's name in status and metrics: one topic segment. */
    name: Type.String({ minLength: 1, maxLength: MAX_TOPIC_SEGMENT_BYTES }),
    /** Topics are `<agent name>/<prefix>/<point name>`; default: the source's name. */
    prefix: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_TOPIC_BYTES })),
    /** One reading per point per interval (`100ms`, `5s`). */
    interval: Type.String({ maxLength: 16, default: '1s' }),
    /** Readings per point per write; above 1, one write carries several timestamps (high rates). */
    batch: Type.Integer({ minimum: 1, maximum: MAX_READINGS_PER_WRITE, default: 1 }),
    points: Type.Array(SimulatedPointSchema, { maxItems: MAX_POINTS_PER_SOURCE, default: [] }),
    generate: Type.Optional(GenerateSchema),
    /** Readings per point before the source finishes; 0: forever. Tests use it to produce exactly N. */
    limit: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, default: 0 }),
  },
  { additionalProperties: false },
);

export type SimulatorConfig = Static<typeof SimulatorConfigSchema>;
/** A declared point's signal keys, or the generated points'. */
export type SignalConfig = Static<typeof GenerateSchema> | Static<typeof SimulatedPointSchema>;

/** The signal of one point, defaults filled in. Time-based signals run on the wall clock. */
export type SignalSpec =
  | {
      readonly signal: 'sine';
      readonly periodMs: number;
      readonly min: number;
      readonly max: number;
      readonly phaseMs: number;
    }
  | { readonly signal: 'ramp'; readonly min: number; readonly max: number; readonly step: number }
  | {
      readonly signal: 'randomWalk';
      readonly min: number;
      readonly max: number;
      readonly step: number;
      readonly seed: number;
    }
  | {
      readonly signal: 'step';
      readonly values: readonly (number | string | boolean)[];
      readonly periodMs: number;
      readonly phaseMs: number;
    }
  | { readonly signal: 'toggle'; readonly periodMs: number; readonly phaseMs: number };

export interface SimulatedPoint {
  readonly name: string;
  readonly spec: SignalSpec;
  readonly unit: string | undefined;
}

/** The points of a valid config, in order: the declared ones, then the generated ones. */
export function resolveSimulatedPoints(config: SimulatorConfig): SimulatedPoint[] {
  const points = config.points.map((point) => ({
    name: point.name,
    spec: resolveSignal(point, point.name),
    unit: point.unit,
  }));
  const { generate } = config;
  if (generate === undefined) return points;
  for (let index = 0; index < generate.count; index++) {
    const name = generatedName(index);
    points.push({ name, spec: resolveSignal(generate, name, index, generate.count), unit: generate.unit });
  }
  return points;
}

/** The topics of a valid config below the agent's namespace. */
export function simulatorTopics(config: SimulatorConfig): string[] {
  const prefix = config.prefix ?? config.name;
  return resolveSimulatedPoints(config).map((point) => `${prefix}/${point.name}`);
}

export function generatedName(index: number): string {
  return `p${String(index).padStart(4, '0')}`;
}

/**
 * Generated points (`index` of `count`) must not all read the same: their time-based signals are
 * spread evenly over one period, and a given seed is the first walk's, the next one's seed + 1, ...
 */
function resolveSignal(config: SignalConfig, name: string, index = 0, count = 1): SignalSpec {
  const min = config.min ?? SIGNAL_DEFAULTS.min;
  const max = config.max ?? SIGNAL_DEFAULTS.max;
  const step = config.step ?? SIGNAL_DEFAULTS.step;
  const periodMs = parseDuration(config.period ?? SIGNAL_DEFAULTS.period, { milliseconds: true }) ?? 0;
  const phaseMs = Math.round((index / count) * periodMs);
  switch (config.signal) {
    case 'sine':
      return { signal: 'sine', periodMs, min, max, phaseMs };
    case 'ramp':
      return { signal: 'ramp', min, max, step };
    case 'randomWalk':
      return {
        signal: 'randomWalk',
        min,
        max,
        step,
        seed: config.seed === undefined ? seedFromName(name) : (config.seed + index) >>> 0,
      };
    case 'step':
      return { signal: 'step', values: config.values ?? [], periodMs, phaseMs };
    case 'toggle':
      return { signal: 'toggle', periodMs, phaseMs };
  }
}

/** FNV-1a (32-bit) of the name: walks without a seed differ by point, and are still repeatable. */
function seedFromName(name: string): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < name.length; index++) {
    hash = Math.imul(hash ^ name.charCodeAt(index), 0x01000193);
  }
  return hash >>> 0;
}

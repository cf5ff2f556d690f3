/**
 * The simulator's signals: each a generator asked for one value per reading, in schedule order,
 * with the reading's schedule time. Time-based signals (sine, step, toggle) are functions of the
 * wall clock, so a restarted agent continues the same curve; ramp and randomWalk count readings
 * from the source's start. All are deterministic: same spec, same times, same values.
 */
import type { PointValue } from '../../points/point.ts';
import type { SignalSpec } from './simulator-config.ts';

export type SignalGenerator = (time: number) => PointValue;

export function createSignal(spec: SignalSpec): SignalGenerator {
  switch (spec.signal) {
    case 'sine': {
      const middle = (spec.min + spec.max) / 2;
      const amplitude = (spec.max - spec.min) / 2;
      return (time) =>
        middle + amplitude * Math.sin((2 * Math.PI * cyclePosition(time, spec)) / spec.periodMs);
    }
    case 'ramp': {
      // Wraps like a PLC counter: max is the last value before min comes round again.
      const span = spec.max - spec.min + 1;
      let offset = 0;
      return () => {
        const value = spec.min + offset;
        offset = (offset + spec.step) % span;
        return value;
      };
    }
    case 'randomWalk': {
      const random = mulberry32(spec.seed);
      let value = (spec.min + spec.max) / 2;
      let first = true;
      return () => {
        if (first) first = false;
        else value = reflect(value + (random() * 2 - 1) * spec.step, spec.min, spec.max);
        return value;
      };
    }
    case 'step': {
      const { values } = spec;
      return (time) => values[periodIndex(time, spec) % values.length] ?? 0;
    }
    case 'toggle':
      return (time) => periodIndex(time, spec) % 2 === 1;
  }
}

interface Periodic {
  readonly periodMs: number;
  readonly phaseMs: number;
}

/** Milliseconds into the current period. */
function cyclePosition(time: number, { periodMs, phaseMs }: Periodic): number {
  return (((time + phaseMs) % periodMs) + periodMs) % periodMs;
}

/** Which period `time` falls in, counted from the Unix epoch. */
function periodIndex(time: number, { periodMs, phaseMs }: Periodic): number {
  return Math.floor((time + phaseMs) / periodMs);
}

/** A step past a bound bounces back off it, so the walk neither sticks to nor leaves [min, max]. */
function reflect(value: number, min: number, max: number): number {
  if (value > max) return Math.max(min, 2 * max - value);
  if (value < min) return Math.min(max, 2 * min - value);
  return value;
}

/**
 * Mulberry32 (Tommy Ettinger, public domain): a 32-bit state, uniform in [0, 1). Small and fast,
 * enough for a simulated walk; not for anything secret.
 */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = Math.imul(state ^ (state >>> 15), state | 1);
    mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61);
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/**
 * What a workload measured, in one shape for the relay and for mosquitto, and the few statistics
 * the report needs.
 */

export interface ThroughputResult {
  /** Points the publisher sent in the timed phase. */
  readonly published: number;
  /** Points received, summed over subscribers. */
  readonly delivered: number;
  /** Points that should have arrived (published x subscribers) but had not when the phase ended. */
  readonly undelivered: number;
  readonly subscribers: number;
  /** From just before the first publish to the last point received. */
  readonly seconds: number;
  /** delivered / seconds. */
  readonly pointsPerSecond: number;
}

export interface LatencyResult {
  readonly samples: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly maxMs: number;
}

/** A workload either ran, or failed with a message; one failure does not hide the other results. */
export type Outcome<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };

export async function attempt<T>(run: () => Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await run() };
  } catch (error) {
    return { ok: false, error: error instanceof Error ? error.message : String(error) };
  }
}

export function throughputResult(
  published: number,
  delivered: number,
  subscribers: number,
  startedAt: number,
  lastDeliveryAt: number,
): ThroughputResult {
  const seconds = Math.max(lastDeliveryAt - startedAt, 1e-3) / 1000;
  return {
    published,
    delivered,
    undelivered: published * subscribers - delivered,
    subscribers,
    seconds,
    pointsPerSecond: delivered / seconds,
  };
}

/** Nearest-rank percentiles (the value below which p% of samples fall, no interpolation). */
export function summarizeLatency(samplesMs: readonly number[]): LatencyResult {
  if (samplesMs.length === 0) throw new Error('no latency samples');
  const sorted = Float64Array.from(samplesMs).sort();
  const rank = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
  return {
    samples: sorted.length,
    p50Ms: rank(0.5),
    p99Ms: rank(0.99),
    p999Ms: rank(0.999),
    maxMs: sorted[sorted.length - 1]!,
  };
}

/** One system's results (the relay's, or mosquitto's). */
export interface SystemResults {
  readonly oneToOne: Outcome<ThroughputResult>;
  readonly fanOut: Outcome<ThroughputResult>;
  readonly latency: Outcome<LatencyResult>;
}

/**
 * Samples of a running plant for `npm run bench:runtime` (runtime-phases.ts): each agent's
 * counters (its /metrics) and the CPU time of the relay, both agents and the whole machine, taken
 * together, and the rates and CPU shares of a window of them.
 */
import { readCpuSeconds, readMachineCpuSeconds } from './processes.ts';
import type { RuntimeTiming } from './runtime-options.ts';
import type { AgentChild, AgentCounters, RuntimePlant } from './runtime-plant.ts';

/** How often a window, or a wait for the sink to be live, is sampled. */
export const SAMPLE_INTERVAL_MS = 250;

/** Cores busy over a window: each process of the plant, and the whole machine (whoever used it). */
export interface CpuShare {
  readonly relay: number;
  readonly ot: number;
  readonly it: number;
  readonly machine: number;
}

export interface Sample {
  readonly at: number;
  readonly ot: AgentCounters;
  readonly it: AgentCounters;
  readonly cpu: {
    readonly relay: number;
    readonly ot: number;
    readonly it: number;
    readonly machine: number;
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function sample(plant: RuntimePlant, ot: AgentChild, it: AgentChild): Promise<Sample> {
  const [otCounters, itCounters] = await Promise.all([ot.counters(), it.counters()]);
  return {
    at: (otCounters.at + itCounters.at) / 2,
    ot: otCounters,
    it: itCounters,
    cpu: {
      relay: readCpuSeconds(plant.relay.pid),
      ot: readCpuSeconds(ot.pid),
      it: readCpuSeconds(it.pid),
      machine: readMachineCpuSeconds(),
    },
  };
}

export function cpuBetween(first: Sample, last: Sample): CpuShare {
  const seconds = (last.at - first.at) / 1000;
  const share = (key: keyof Sample['cpu']) => (last.cpu[key] - first.cpu[key]) / seconds;
  return { relay: share('relay'), ot: share('ot'), it: share('it'), machine: share('machine') };
}

export /** The warm-up, then the timed window, sampled every SAMPLE_INTERVAL_MS. */
async function timeWindow(
  plant: RuntimePlant,
  ot: AgentChild,
  it: AgentChild,
  timing: RuntimeTiming,
): Promise<readonly Sample[]> {
  await sleep(timing.warmUpMs);
  const samples = [await sample(plant, ot, it)];
  const end = performance.now() + timing.measureMs;
  while (performance.now() < end) {
    await sleep(Math.min(SAMPLE_INTERVAL_MS, end - performance.now()));
    samples.push(await sample(plant, ot, it));
  }
  return samples;
}

/**
 * Units per second of `read` over the window: the least-squares slope. The simulator writes each
 * point once per batch, so the counters rise in steps; a fit over every sample, unlike the first
 * and last alone, does not depend on where in a step the window starts and ends.
 */
export function ratePerSecond(samples: readonly Sample[], read: (sample: Sample) => number): number {
  const meanAt = samples.reduce((sum, item) => sum + item.at, 0) / samples.length;
  const meanValue = samples.reduce((sum, item) => sum + read(item), 0) / samples.length;
  let covariance = 0;
  let variance = 0;
  for (const item of samples) {
    covariance += (item.at - meanAt) * (read(item) - meanValue);
    variance += (item.at - meanAt) ** 2;
  }
  return (covariance / variance) * 1000;
}

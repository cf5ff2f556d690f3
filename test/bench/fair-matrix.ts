/**
 * The fair comparison: every system carries the same batch bytes per message (1, 16 and 128 points
 * of PAYLOAD_BYTES), 1 -> 1 and 1 -> FAN_OUT_SUBSCRIBERS, as fast as the flow window lets it. The
 * systems take turns within each (size, fan-out) cell, so that a change in the machine's load
 * during the run falls on all of them alike and the ratios stay comparable.
 */
import { makeBatch } from './payloads.ts';
import { runPhase, type PhaseResult } from './phase.ts';
import type { ThroughputSettings } from './settings.ts';
import { attempt, type Outcome } from './stats.ts';
import { closePhaseClients, type PhaseSpec, type SystemName, type SystemUnderTest } from './systems.ts';

export interface FairCell {
  readonly system: SystemName;
  readonly pointsPerMessage: number;
  readonly messageBytes: number;
  readonly subscribers: number;
  readonly result: Outcome<PhaseResult>;
}

/** Phase numbers, unique in the run (topics and client names). */
export class PhaseCounter {
  #next = 0;

  next(): number {
    return this.#next++;
  }
}

export async function runFairMatrix(
  systems: readonly SystemUnderTest[],
  pointsPerMessage: readonly number[],
  fanOuts: readonly number[],
  settings: ThroughputSettings,
  phases: PhaseCounter,
  progress: (message: string) => void,
): Promise<FairCell[]> {
  const cells: FairCell[] = [];
  for (const points of pointsPerMessage) {
    const { batch, shape } = makeBatch(points);
    for (const subscribers of fanOuts) {
      for (const system of systems) {
        progress(`fair: ${system.name}, ${points} points/message, 1 -> ${subscribers}`);
        const spec: PhaseSpec = { index: phases.next(), batch, shape, subscribers };
        const result = await attempt(() => measureThroughput(system, spec, settings));
        cells.push({
          system: system.name,
          pointsPerMessage: points,
          messageBytes: shape.messageBytes,
          subscribers,
          result,
        });
      }
    }
  }
  return cells;
}

export async function measureThroughput(
  system: SystemUnderTest,
  spec: PhaseSpec,
  settings: ThroughputSettings,
): Promise<PhaseResult> {
  const clients = await system.connect(spec);
  try {
    return await runPhase({
      ...clients,
      shape: spec.shape,
      mode: { kind: 'throughput' },
      warmUpMs: settings.warmUpMs,
      measureMs: settings.measureMs,
      maxBytes: settings.maxBytes,
      serverPids: system.serverPids,
    });
  } finally {
    await closePhaseClients(clients);
  }
}

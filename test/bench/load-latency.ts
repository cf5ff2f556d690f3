/**
 * Latency under load: each system is paced at fractions of the capacity the same run measured for
 * it (same message size, same fan-out), and every message's latency is taken from its send stamp
 * to its arrival in each subscriber, in another process (clock.ts: one monotonic clock for all;
 * mosquitto's C clients: wall clock, see mosquitto-c-clients.ts).
 */
import { makeBatch } from './payloads.ts';
import { runPhase, type PhaseResult } from './phase.ts';
import type { LoadLatencySettings } from './settings.ts';
import { attempt, type Outcome } from './stats.ts';
import { closePhaseClients, type SystemName, type SystemUnderTest } from './systems.ts';
import type { PhaseCounter } from './fair-matrix.ts';

export interface LatencyCell {
  readonly system: SystemName;
  readonly subscribers: number;
  /** Fraction of capacity offered. */
  readonly load: number;
  readonly offeredMessagesPerSecond: number;
  readonly result: Outcome<PhaseResult>;
}

/** Capacity in messages per second of `system` at `subscribers`, from the fair matrix. */
export type CapacityOf = (system: SystemName, subscribers: number) => number | undefined;

export async function runLoadLatency(
  systems: readonly SystemUnderTest[],
  fanOuts: readonly number[],
  settings: LoadLatencySettings,
  capacityOf: CapacityOf,
  phases: PhaseCounter,
  progress: (message: string) => void,
): Promise<LatencyCell[]> {
  const { batch, shape } = makeBatch(settings.pointsPerMessage);
  const cells: LatencyCell[] = [];
  for (const subscribers of fanOuts) {
    for (const load of settings.loads) {
      for (const system of systems) {
        const capacity = capacityOf(system.name, subscribers);
        const offered = capacity === undefined ? 0 : load * capacity;
        progress(
          `latency: ${system.name}, 1 -> ${subscribers}, ${Math.round(load * 100)}% (${Math.round(offered)} messages/s)`,
        );
        const result = await attempt(async () => {
          if (!(offered > 0)) throw new Error('no capacity measured for it in this run');
          const clients = await system.connect({
            index: phases.next(),
            batch,
            shape,
            subscribers,
            pace: { messagesPerSecond: offered },
            latency: {
              skipMessages: Math.ceil((offered * settings.warmUpMs) / 1000),
              maxSamples: settings.maxSamplesPerSubscriber,
            },
          });
          try {
            return await runPhase({
              ...clients,
              shape,
              mode: { kind: 'paced', messagesPerSecond: offered },
              warmUpMs: settings.warmUpMs,
              measureMs: settings.measureMs,
              maxBytes: Number.MAX_SAFE_INTEGER,
              serverPids: system.serverPids,
            });
          } finally {
            await closePhaseClients(clients);
          }
        });
        cells.push({ system: system.name, subscribers, load, offeredMessagesPerSecond: offered, result });
      }
    }
  }
  return cells;
}

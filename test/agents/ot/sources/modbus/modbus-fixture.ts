/**
 * A Modbus source under test against a ModbusTestDevice: an output that records every write, the
 * source on a manual clock (or the platform's), and a step that runs exactly one poll cycle: the
 * clock moves to the cycle's time, the real requests go to the real device, and the step waits
 * (with a bound) until the cycle's readings are written.
 */
import type { PointReading } from '../../../../../agents/points/point.ts';
import type { ModbusConfig } from '../../../../../agents/ot/sources/modbus/config.ts';
import { ModbusSource } from '../../../../../agents/ot/sources/modbus/modbus-source.ts';
import { validateSourceConfig } from '../../../../../agents/ot/sources/registry.ts';
import type { SourceOutput } from '../../../../../agents/ot/sources/source.ts';
import { parseDuration } from '../../../../../pki/duration.ts';
import { DmzError } from '../../../../../relay/protocol/errors.ts';
import { ManualClock } from '../../../../support/manual-clock.ts';
import { waitFor } from '../../../../support/wait.ts';

export const AGENT = 'press-7';
/** A whole number of seconds, so cycle times are easy to read. */
export const T0 = 1_800_000_000_000;

export class RecordingOutput implements SourceOutput {
  readonly writes: { readonly topic: string; readonly readings: readonly PointReading[] }[] = [];
  /** Refuses this many writes (AGENT_ERR_LOG_BUSY, as a log that is behind) before it takes any. */
  refusals = 0;

  write(topic: string, readings: readonly PointReading[]): Promise<void> {
    if (this.refusals > 0) {
      this.refusals--;
      return Promise.reject(new DmzError('AGENT_ERR_LOG_BUSY'));
    }
    this.writes.push({ topic, readings });
    return Promise.resolve();
  }

  /** The readings of point `name` (under the source `plc`), in order. */
  readingsOf(name: string, prefix = 'plc'): PointReading[] {
    const topic = `${AGENT}/${prefix}/${name}`;
    return this.writes.filter((write) => write.topic === topic).flatMap((write) => write.readings);
  }

  /** The last reading of each point, by point name. */
  latest(prefix = 'plc'): Map<string, PointReading> {
    const latest = new Map<string, PointReading>();
    for (const write of this.writes) {
      const reading = write.readings.at(-1);
      if (reading !== undefined) latest.set(write.topic.slice(`${AGENT}/${prefix}/`.length), reading);
    }
    return latest;
  }
}

export interface SourceUnderTest {
  readonly source: ModbusSource;
  readonly output: RecordingOutput;
  readonly clock: ManualClock | undefined;
  /** Moves the manual clock to the next cycle and waits until that cycle is done. */
  cycle(): Promise<void>;
  /** Cycles completed by the first device. */
  cycles(): number;
  stop(): Promise<void>;
}

/**
 * A started source named `plc` with these devices. With `realTime`, the platform's clock and
 * timers; otherwise a manual clock from T0 that only `cycle()` moves. The backoff's jitter is 0: a
 * device that is back is reconnected at the next cycle.
 */
export function startModbusSource(
  devices: readonly Record<string, unknown>[],
  realTime = false,
): SourceUnderTest {
  const config = validateSourceConfig({ type: 'modbus', name: 'plc', devices }) as ModbusConfig;
  const clock = realTime ? undefined : new ManualClock(T0);
  const source = new ModbusSource(
    config,
    { agentName: AGENT, ...(clock === undefined ? {} : { now: clock.now, timers: clock }) },
    { random: () => 0 },
  );
  const output = new RecordingOutput();
  source.start(output);
  const cycles = () => source.stats().devices[0]?.cycles ?? 0;
  let started = false;
  return {
    source,
    output,
    clock,
    cycles,
    async cycle() {
      if (clock === undefined) throw new Error('cycle() needs the manual clock');
      const before = cycles();
      // The first cycle is due at start; each next one a poll interval later.
      await clock.advance(started ? pollIntervalOf(config) : 0);
      started = true;
      await waitFor(() => cycles() > before, `poll cycle ${before + 1}`);
    },
    stop: () => source.stop(),
  };
}

function pollIntervalOf(config: ModbusConfig): number {
  return parseDuration(config.devices[0]?.pollInterval ?? '1s', { milliseconds: true }) ?? 1_000;
}

/**
 * A SourceOutput for source tests: records every write; while `held`, a write resolves only when
 * the test releases it (a log that is behind); `refusals` writes are refused first (a busy log).
 */
import type { PointReading } from '../../agents/points/point.ts';
import type { SourceOutput } from '../../agents/ot/sources/source.ts';
import { DmzError } from '../../relay/protocol/errors.ts';

export interface RecordedWrite {
  readonly topic: string;
  readonly readings: readonly PointReading[];
}

export class RecordingOutput implements SourceOutput {
  readonly writes: RecordedWrite[] = [];
  held = false;
  refusals = 0;
  #waiting: (() => void)[] = [];

  async write(topic: string, readings: readonly PointReading[]): Promise<void> {
    if (this.refusals > 0) {
      this.refusals--;
      throw new DmzError('AGENT_ERR_LOG_BUSY');
    }
    if (this.held) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    this.writes.push({ topic, readings });
  }

  /** Writes waiting for release(). */
  get inFlight(): number {
    return this.#waiting.length;
  }

  release(): void {
    this.held = false;
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const resolve of waiting) resolve();
  }

  readingsOf(topic: string): PointReading[] {
    return this.writes.filter((write) => write.topic === topic).flatMap((write) => write.readings);
  }

  /** The latest reading of `topic`, if any. */
  last(topic: string): PointReading | undefined {
    return this.readingsOf(topic).at(-1);
  }

  get count(): number {
    return this.writes.reduce((sum, write) => sum + write.readings.length, 0);
  }
}

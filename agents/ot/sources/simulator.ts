/**
 * The `simulator` source: signals for demos, tests and benchmarks, deterministic for a given clock
 * and seed. Reading k of every point is due at start + k * interval (a drift-free schedule, not a
 * repeating timer), carries that time as its source time, and is written once, in order: a write
 * that takes longer than the schedule makes the next one bigger (`behind` counts it), it never
 * makes the source skip a reading or pile up writes.
 */
import { ConfigError, DmzError, type ConfigIssue } from '../../../relay/protocol/errors.ts';
import { validateTopic } from '../../../relay/protocol/topics.ts';
import { parseDuration } from '../../../pki/duration.ts';
import type { PointReading } from '../../points/point.ts';
import { createSignal, type SignalGenerator } from './signals.ts';
import { checkSimulatorConfig } from './simulator-checks.ts';
import {
  resolveSimulatedPoints,
  SimulatorConfigSchema,
  simulatorTopics,
  type SimulatorConfig,
} from './simulator-config.ts';
import {
  describeSourceError,
  MAX_READINGS_PER_WRITE,
  MIN_RETRY_DELAY_MS,
  PLATFORM_TIMERS,
  type PointSource,
  type SourceBackend,
  type SourceContext,
  type SourceError,
  type SourceOutput,
  type SourceStats,
  type SourceTimers,
  type TopicMetadata,
} from './source.ts';

/** A refused write is tried again one batch interval later, and never sooner than MIN_RETRY_DELAY_MS. */
export { MIN_RETRY_DELAY_MS } from './source.ts';
/**
 * The longest delay a platform timer takes (2^31 - 1 ms, about 24.8 days); a longer wait wakes
 * early, finds nothing due, and waits again.
 */
const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

export const SIMULATOR_SOURCE: SourceBackend<SimulatorConfig> = {
  schema: SimulatorConfigSchema,
  check: checkSimulatorConfig,
  topics: simulatorTopics,
  create: (config, context) => new SimulatorSource(config, context),
};

interface PointStream {
  readonly topic: string;
  readonly signal: SignalGenerator;
  /** Readings generated so far: the index of the next one. */
  generated: number;
  /** Generated but not yet durable: in the write in flight, or kept from a refused one. */
  pending: readonly PointReading[];
}

class SimulatorSource implements PointSource {
  readonly type = 'simulator';
  readonly name: string;
  readonly topics: readonly string[];
  readonly topicMetadata: ReadonlyMap<string, TopicMetadata>;
  readonly #streams: PointStream[];
  readonly #intervalMs: number;
  readonly #batch: number;
  /** Readings per point before the source finishes (Infinity: never). */
  readonly #limit: number;
  readonly #now: () => number;
  readonly #timers: SourceTimers;
  #output: SourceOutput | undefined;
  #state: 'ready' | 'running' | 'stopped' = 'ready';
  #startTime = 0;
  #timer: unknown;
  /** When the scheduled round is due. */
  #dueAt = 0;
  #round: Promise<void> | undefined;
  #readings = 0;
  #batches = 0;
  #failedWrites = 0;
  #behind = 0;
  #lagMs = 0;
  #finished = false;
  #lastError: SourceError | undefined;

  constructor(config: SimulatorConfig, context: SourceContext) {
    const points = resolveSimulatedPoints(config);
    const topics = simulatorTopics(config).map((topic) => `${context.agentName}/${topic}`);
    checkTopics(topics, config, context);
    this.name = config.name;
    this.topics = Object.freeze(topics);
    this.topicMetadata = new Map(
      points.map((point, index) => [
        topics[index] ?? '',
        point.unit === undefined ? {} : { unit: point.unit },
      ]),
    );
    this.#limit = config.limit === 0 ? Infinity : config.limit;
    this.#streams = points.map((point, index) => ({
      topic: topics[index] ?? '',
      signal: createSignal(point.spec),
      generated: Math.min(context.logged?.(topics[index] ?? '') ?? 0, this.#limit),
      pending: [],
    }));
    this.#intervalMs = parseDuration(config.interval, { milliseconds: true }) ?? 0;
    this.#batch = config.batch;
    this.#now = context.now ?? Date.now;
    this.#timers = context.timers ?? PLATFORM_TIMERS;
  }

  start(output: SourceOutput): void {
    if (this.#state !== 'ready') {
      throw new DmzError('AGENT_ERR_SOURCE_STATE', `source ${this.name} was started or stopped already`);
    }
    this.#output = output;
    this.#state = 'running';
    // Readings already logged (a restart) are not taken again: the schedule goes on after them.
    const resumed = Math.min(...this.#streams.map((stream) => stream.generated));
    this.#startTime = this.#now() - resumed * this.#intervalMs;
    this.#schedule(this.#now());
  }

  async stop(): Promise<void> {
    this.#state = 'stopped';
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#round;
  }

  stats(): SourceStats {
    return {
      readings: this.#readings,
      batches: this.#batches,
      failedWrites: this.#failedWrites,
      behind: this.#behind,
      lagMs: this.#lagMs,
      finished: this.#finished,
      lastError: this.#lastError,
    };
  }

  #schedule(dueAt: number): void {
    this.#dueAt = dueAt;
    this.#timer = this.#timers.setTimeout(
      () => {
        this.#timer = undefined;
        this.#round = this.#runRound().finally(() => {
          this.#round = undefined;
        });
      },
      Math.min(MAX_TIMER_DELAY_MS, Math.max(0, dueAt - this.#now())),
    );
  }

  /** Writes every topic's due readings at once (the log commits them together), then waits for all. */
  async #runRound(): Promise<void> {
    if (this.#state !== 'running') return;
    const now = this.#now();
    this.#lagMs = Math.max(0, now - this.#dueAt);
    const due = this.#dueCount(now);
    let behind = false;
    const writes: Promise<boolean>[] = [];
    for (const stream of this.#streams) {
      const durable = stream.generated - stream.pending.length;
      if (due - durable > this.#batch) behind = true;
      const target = Math.min(due, durable + MAX_READINGS_PER_WRITE);
      if (stream.generated < target) stream.pending = [...stream.pending, ...this.#generate(stream, target)];
      if (stream.pending.length > 0) writes.push(this.#write(stream));
    }
    if (behind) this.#behind++;
    const written = await Promise.all(writes);
    if (this.#state === 'running') this.#scheduleNext(written.includes(false));
  }

  /** Readings per point due by `now` and ready to write: whole batches, or up to the limit. */
  #dueCount(now: number): number {
    if (now < this.#startTime) return 0;
    const taken = Math.floor((now - this.#startTime) / this.#intervalMs) + 1;
    if (taken >= this.#limit) return this.#limit;
    return taken - (taken % this.#batch);
  }

  #generate(stream: PointStream, target: number): PointReading[] {
    const readings: PointReading[] = [];
    for (let index = stream.generated; index < target; index++) {
      const sourceTime = this.#startTime + index * this.#intervalMs;
      readings.push({ value: stream.signal(sourceTime), quality: 'good', sourceTime });
    }
    stream.generated = target;
    return readings;
  }

  /** True once the readings are durable; false (kept as pending, to write again) if refused. */
  async #write(stream: PointStream): Promise<boolean> {
    const readings = stream.pending;
    try {
      await this.#output?.write(stream.topic, readings);
    } catch (error) {
      this.#failedWrites++;
      this.#lastError = describeSourceError(error, this.#now());
      return false;
    }
    stream.pending = [];
    this.#readings += readings.length;
    this.#batches++;
    return true;
  }

  #scheduleNext(refused: boolean): void {
    let durable = Infinity;
    for (const stream of this.#streams) durable = Math.min(durable, stream.generated - stream.pending.length);
    if (durable >= this.#limit) {
      this.#finished = true;
      return;
    }
    if (refused) {
      this.#schedule(this.#now() + Math.max(this.#batch * this.#intervalMs, MIN_RETRY_DELAY_MS));
      return;
    }
    // The next round is due when the batch after the least advanced point's readings is complete;
    // if that time has passed already (the writes were slow), it runs at once, with more readings.
    const nextBatchEnd = Math.min((Math.floor(durable / this.#batch) + 1) * this.#batch, this.#limit);
    this.#schedule(this.#startTime + (nextBatchEnd - 1) * this.#intervalMs);
  }
}

/** Every topic fits under the agent's name (the config checks could not know the name). */
function checkTopics(topics: readonly string[], config: SimulatorConfig, context: SourceContext): void {
  const at = context.configPath ?? '';
  const issues: ConfigIssue[] = [];
  for (const [index, topic] of topics.entries()) {
    const generated = index >= config.points.length;
    try {
      validateTopic(topic);
    } catch (error) {
      issues.push({
        path: generated ? `${at}/generate` : `${at}/points/${index}/name`,
        message: `topic ${topic} under agent ${context.agentName} is invalid: ${(error as Error).message}`,
      });
      // The generated names are alike: the first says it for all of them.
      if (generated) break;
    }
  }
  if (issues.length > 0) throw new ConfigError(issues, `source ${config.name}`);
}

/**
 * The OT agent's point sources: where readings come from (a simulator today; Modbus TCP, OPC UA and
 * MQTT next). Every backend sits behind this one interface and is chosen by its config's `type`
 * (registry.ts), as smallstep's CA backends are (cas/apiv1/services.go). The runtime hands each
 * source a SourceOutput; the source writes readings of one topic at a time, and waits for each write
 * to be durable before it produces more.
 */
import type { TObject } from '@sinclair/typebox';
import { DmzError, type ConfigIssue, type ErrorCode } from '../../../relay/protocol/errors.ts';
import { MAX_POINTS_PER_FRAME } from '../../../relay/protocol/limits.ts';
import type { PointReading } from '../../points/point.ts';
import { MAX_RECORDS_PER_APPEND } from '../log/limits.ts';

/**
 * Readings in one write: one write is one log append and one publish frame, so it holds at most
 * what both take (a source behind its schedule catches up in several writes of at most this).
 */
export const MAX_READINGS_PER_WRITE = Math.min(MAX_POINTS_PER_FRAME, MAX_RECORDS_PER_APPEND);
/**
 * A refused write is tried again, never sooner than this: the log's busy spells last a commit or
 * more (milliseconds), and a log that has failed is not hammered. Every source keeps to it.
 */
export const MIN_RETRY_DELAY_MS = 100;

export interface SourceOutput {
  /**
   * Hands readings of one topic (a full topic under the agent's namespace) to the runtime; resolves
   * once they are durable in the log. A source awaits it before producing more, so a log that falls
   * behind slows the source down instead of dropping points silently (the source counts how far
   * behind its schedule it is). Rejects if the runtime refused the batch (e.g. AGENT_ERR_LOG_BUSY);
   * the source then retries or reports, never silently drops. At most MAX_READINGS_PER_WRITE
   * readings, in the order they were taken; the source does not touch the array afterwards. A
   * write is all or nothing (one log append): a rejected one stored none of its readings, so the
   * source writing them again duplicates none.
   */
  write(topic: string, readings: readonly PointReading[]): Promise<void>;
}

export interface PointSource {
  readonly name: string;
  /** The config `type` that made it (`simulator`). */
  readonly type: string;
  /** Topics this source will write, known before start (for status/metrics). */
  readonly topics: readonly string[];
  /** What is known of each topic beyond its readings, by topic: informational, never encoded. */
  readonly topicMetadata: ReadonlyMap<string, TopicMetadata>;
  /** Starts producing into `output`. A source starts once: AGENT_ERR_SOURCE_STATE otherwise. */
  start(output: SourceOutput): void;
  /** Stops producing; resolves once no write is in flight. */
  stop(): Promise<void>;
  /** For status and metrics: readings produced, batches written, times it fell behind, last error. */
  stats(): SourceStats;
  /**
   * Writes one value to the device behind `topic` (a full topic of this source), once, never
   * coalesced with another write. Only sources that take writes have it; the OT agent's write
   * checks (agents/ot/writes/) have passed before it is called. `deadline` (milliseconds since the
   * Unix epoch, by the source's clock) is the command's: a write still waiting for its turn on the
   * device (a connect, a read before it) when it passes is never sent, AGENT_ERR_WRITE_EXPIRED.
   * Never throws: a failure is an outcome.
   */
  write?(topic: string, value: WriteValue, deadline: number): Promise<WriteOutcome>;
}

/** What a write command may carry: what a point's reading can be, but for arrays. */
export type WriteValue = number | boolean | string;
export type WriteValueType = 'number' | 'boolean' | 'string';

/**
 * A device write's outcome: done, or why not, with the code the requester gets: the device
 * refused (a Modbus exception, a Bad OPC UA status), the write never got there or its answer never
 * came back, or the value does not fit what the device holds (a register's type, a node's data type).
 */
export type WriteOutcome =
  | { readonly ok: true }
  | {
      readonly ok: false;
      readonly code:
        | 'AGENT_ERR_WRITE_DEVICE_EXCEPTION'
        | 'AGENT_ERR_WRITE_DEVICE_FAILED'
        | 'AGENT_ERR_WRITE_EXPIRED'
        | 'AGENT_ERR_WRITE_WRONG_TYPE'
        | 'AGENT_ERR_WRITE_OUT_OF_RANGE';
      /** For the requester, on the IT side: never a device's address or name. */
      readonly message: string;
      /** For the OT host's audit log and agent log only: which device, endpoint or node, and why. */
      readonly detail?: string;
    };

export interface TopicMetadata {
  /** Engineering unit (`degC`, `m3/h`), for dashboards and historians. */
  readonly unit?: string;
}

/** Counters since start, for status and metrics, and for tests that must not time anything. */
export interface SourceStats {
  /** Readings written: their writes resolved, so they are durable. */
  readonly readings: number;
  /** Writes that resolved. */
  readonly batches: number;
  /** Writes the runtime refused; their readings were kept and written again. */
  readonly failedWrites: number;
  /** Times the source found more than one batch due at once: its writes took longer than its schedule. */
  readonly behind: number;
  /** How late the latest round of writes started after it was due, in milliseconds. */
  readonly lagMs: number;
  /** True once every topic has all its readings (a source with a `limit`); it writes no more. */
  readonly finished: boolean;
  readonly lastError: SourceError | undefined;
}

export interface SourceError {
  /** The catalog code when the refusal had one (AGENT_ERR_LOG_BUSY), else undefined. */
  readonly code: ErrorCode | undefined;
  readonly message: string;
  /** When it happened, by the source's clock. */
  readonly time: number;
}

/** Timers the source schedules with: the platform's by default, a test's (driven by its clock) in tests. */
export interface SourceTimers {
  setTimeout(callback: () => void, delayMs: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** What the runtime tells every source it creates. */
export interface SourceContext {
  /** The agent's name: every topic a source writes is `<agentName>/...` (its publish namespace). */
  readonly agentName: string;
  /** Milliseconds since the Unix epoch (default Date.now); readings' source times come from it. */
  readonly now?: () => number;
  /** Default: the platform's setTimeout and clearTimeout. */
  readonly timers?: SourceTimers;
  /** The key path of this source's config section (`/sources/2`), for errors found at creation. */
  readonly configPath?: string;
  /**
   * Readings of `topic` the log already holds (default none): a restarted agent's source goes on
   * from there, so a `limit` counts readings across restarts, not per run.
   */
  readonly logged?: (topic: string) => number;
  /**
   * This source's own directory under the agent's state, `sourceStateDir(state, name)`, for what
   * it keeps across restarts (an OPC UA client's certificate and trust lists); the source creates
   * it when it needs it. Sources that keep nothing ignore it.
   */
  readonly stateDir?: string;
}

/** Where a source's state lives: `<agent state>/sources/<source name>`, for the runtime and the CLI. */
export function sourceStateDir(agentState: string, sourceName: string): string {
  return `${agentState}/sources/${sourceName}`;
}

/** A refused write or a failure as a source reports it: the catalog code when there is one. */
export function describeSourceError(error: unknown, time: number): SourceError {
  return {
    code: error instanceof DmzError ? error.code : undefined,
    message: error instanceof Error ? error.message : String(error),
    time,
  };
}

export const PLATFORM_TIMERS: SourceTimers = {
  setTimeout: (callback, delayMs) => setTimeout(callback, delayMs),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/**
 * One kind of source, as the registry knows it (smallstep's cas/apiv1 registry): the schema of its
 * config section, the checks beyond the schema, and how to make one.
 */
export interface SourceBackend<Config> {
  /** The config section's schema: `type` is a literal of the backend's type; unknown keys refused. */
  readonly schema: TObject;
  /** Problems the schema cannot see (ranges between keys, names, durations), under the key path `at`. */
  check(config: Config, at: string): ConfigIssue[];
  /** The topics a valid config writes, relative to the agent's namespace (`line1/temp`). */
  topics(config: Config): string[];
  /** A source for a valid config; ConfigError if a topic does not fit under the agent's name. */
  create(config: Config, context: SourceContext): PointSource;
  /**
   * Why point `topic` (below the agent's namespace) cannot take writes of `valueType`, or
   * undefined when it can. Backends without it take no writes.
   */
  checkWrite?(config: Config, topic: string, valueType: WriteValueType): string | undefined;
}

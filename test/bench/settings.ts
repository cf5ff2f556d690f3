/**
 * The benchmark's workload parameters, shared by every system so that each carries the same bytes.
 * Every phase is bounded twice: by a count and by a time limit, whichever comes first. run.ts can
 * override the sizes from its command line (`--help`); these are the defaults of `npm run bench`.
 */

/** Bytes of one point's payload: a timestamped reading with quality and a tag name fits in 128. */
export const PAYLOAD_BYTES = 128;

/**
 * Points per message in the fair comparison: one point per message (MQTT's and NATS's habit), a
 * small batch, and the relay's own batch (~16 KiB). Every system carries the same batch bytes
 * (agents/points/batch.ts) as one message: a relay publish frame, an MQTT PUBLISH, a NATS PUB.
 */
export const POINTS_PER_MESSAGE = [1, 16, 128] as const;

/** Subscribers in the fan-out workload, each in a process of its own. */
export const FAN_OUT_SUBSCRIBERS = 10;

/**
 * End-to-end flow control, the same for every system: the publisher may run at most this many
 * payload bytes ahead of the slowest subscriber. It keeps every broker's queue per subscriber
 * bounded (the relay's slow-consumer limit is raised to 4x this in the benchmark's relay config,
 * nats-server's max_pending is 64 MiB) while staying far above loopback's bandwidth-delay product
 * (a few hundred KiB at these rates, plus the progress reports' delay).
 */
export const FLOW_WINDOW_BYTES = 8 * 1024 * 1024;

/**
 * ... and at most this many messages: of one-point messages 8 MiB would be 64k, seconds of backlog
 * at mosquitto's fan-out rate and seconds of drain after every phase; 4096 is still tens of
 * milliseconds of flight at the fastest rate measured here (nats-server, ~800k messages/s).
 */
export const FLOW_WINDOW_MESSAGES = 4096;

/** Subscribers report how far they are at least this often (and at every quarter window). */
export const PROGRESS_INTERVAL_MS = 5;

/**
 * A Node publisher also stops while its own socket holds this many unsent bytes, so that its
 * memory stays bounded whatever the window allows (about 60 frames of 16 KiB).
 */
export const PUBLISHER_HIGH_WATER_BYTES = 1024 * 1024;

export interface ThroughputSettings {
  /** Publishing before the timed part (JIT, TLS buffers, broker caches warm up); not counted. */
  readonly warmUpMs: number;
  /** The timed part: the publisher runs this long as fast as the window lets it. */
  readonly measureMs: number;
  /** A phase publishes at most this many payload bytes, whatever the time. */
  readonly maxBytes: number;
}

export const THROUGHPUT: ThroughputSettings = {
  warmUpMs: 500,
  measureMs: 2_000,
  maxBytes: 4 * 1024 * 1024 * 1024,
};

export interface LoadLatencySettings {
  /** Offered load as fractions of the capacity the same run measured for that system and fan-out. */
  readonly loads: readonly number[];
  readonly pointsPerMessage: number;
  readonly warmUpMs: number;
  readonly measureMs: number;
  /** Samples kept per subscriber: memory stays bounded, and p99.9 still has 1000s behind it. */
  readonly maxSamplesPerSubscriber: number;
}

export const LOAD_LATENCY: LoadLatencySettings = {
  loads: [0.1, 0.5, 0.8],
  pointsPerMessage: 128,
  warmUpMs: 300,
  measureMs: 3_000,
  maxSamplesPerSubscriber: 200_000,
};

export interface ConnectionSettings {
  /** Idle agents connected at each step (cumulative), on every system in turn. */
  readonly steps: readonly number[];
  /** Processes holding the agents: one per core, so neither alone is the bound. */
  readonly workers: number;
  /** Connection attempts in flight per worker while a step connects. */
  readonly concurrencyPerWorker: number;
  /** After a step, this long for the server to settle (timers, GC) before its RSS is read. */
  readonly settleMs: number;
  /** A step that has not connected every agent by then is reported as it stands. */
  readonly stepTimeLimitMs: number;
}

export const CONNECTIONS: ConnectionSettings = {
  steps: [1_000, 10_000],
  workers: 2,
  concurrencyPerWorker: 32,
  settleMs: 2_000,
  stepTimeLimitMs: 60_000,
};

export interface StormSettings {
  /** Agents connected when the relay restarts: the last connection step's. */
  readonly backWithinMs: number;
  /** How long the benchmark waits for the fleet before it reports what came back. */
  readonly timeLimitMs: number;
  /**
   * Full-jitter backoff ("Exponential Backoff And Jitter", AWS architecture blog): the n-th
   * failed attempt in a row waits a uniform random time in [0, min(cap, base * 2^n)].
   */
  readonly backoffBaseMs: number;
  readonly backoffCapMs: number;
  /** A TLS handshake plus the relay's welcome: what a reconnecting agent waits for at most. */
  readonly connectTimeoutMs: number;
}

/**
 * Base 1 s, cap 15 s: what device SDKs use (AWS IoT's starts at 1 s; mqtt.js retries every 1 s).
 * Ten thousand agents retrying with a 5 s cap make ~4,000 attempts a second while the relay
 * serves a few hundred handshakes; emulated here, at ~0.7 ms of client CPU per attempt, that
 * alone would take both cores (a real fleet pays it on its own machines).
 */
export const STORM: StormSettings = {
  backWithinMs: 30_000,
  timeLimitMs: 60_000,
  backoffBaseMs: 1_000,
  backoffCapMs: 15_000,
  connectTimeoutMs: 15_000,
};

/** Bound on waiting for in-flight messages to arrive after the publisher stopped. */
export const DRAIN_TIMEOUT_MS = 10_000;

/** Bound on starting a child (relay, broker, worker) and on connecting its clients. */
export const STARTUP_TIMEOUT_MS = 15_000;

/** Whole-run watchdog: every child is killed and the run fails if it is still going by then. */
export const RUN_TIME_LIMIT_MS = 660_000;

/**
 * The benchmark's workload parameters, shared by the relay and the mosquitto runs so both carry the
 * same points. Every phase is bounded twice: by a count and by a time limit, whichever comes first.
 */

/** Bytes of one point's payload: a timestamped reading with quality and a tag name fits in 128. */
export const PAYLOAD_BYTES = 128;

/**
 * Points per relay publish frame (~17 KB): batching amortises the per-frame costs (TLS record,
 * WebSocket header, decode, policy check). Sweeps of 64-512 here were within the shared machine's
 * noise of each other; 128 keeps a frame near one TLS record. MQTT has no batch: one point, one message.
 */
export const BATCH_POINTS = 128;

/** Subscribers in the fan-out workload. */
export const FAN_OUT_SUBSCRIBERS = 10;

/** Throughput phases. The relay moves several times mosquitto's rate, so it gets larger counts. */
export const RELAY_THROUGHPUT = {
  /** Points published (and delivered) before timing starts: JIT and TLS buffers warm up. */
  warmUpPoints: 256 * 1024,
  oneToOnePoints: 6 * 1024 * 1024,
  fanOutPoints: 1024 * 1024,
  timeLimitMs: 12_000,
} as const;

export const MOSQUITTO_THROUGHPUT = {
  oneToOnePoints: 400_000,
  fanOutPoints: 50_000,
  timeLimitMs: 15_000,
} as const;

/** Closed-loop latency: one point in flight at a time. */
export const LATENCY = {
  warmUpSamples: 1_000,
  samples: 5_000,
  /** One sample that takes this long means the path is broken, not slow. */
  sampleTimeoutMs: 2_000,
  timeLimitMs: 20_000,
} as const;

/**
 * Publisher backpressure on the relay client: stop writing while the socket holds this many
 * unsent bytes (about 8 frames), so the publisher's memory stays bounded whatever the relay does.
 */
export const PUBLISHER_HIGH_WATER_BYTES = 1024 * 1024;

/**
 * Points published but not yet delivered to the slowest subscriber. It keeps the relay's queue per
 * consumer (about 2.2 MB at this window) under its 8 MiB slow-consumer limit, so the relay never has
 * to drop, while staying far above the bandwidth-delay product of loopback (a few thousand points).
 */
export const IN_FLIGHT_POINTS = 16 * 1024;

/** Bound on waiting for in-flight points to arrive after the last publish. */
export const DRAIN_TIMEOUT_MS = 5_000;

/** Bound on starting a child (relay, broker) and on connecting its clients. */
export const STARTUP_TIMEOUT_MS = 15_000;

/** Whole-run watchdog: every child is killed and the run fails if it is still going by then. */
export const RUN_TIME_LIMIT_MS = 170_000;

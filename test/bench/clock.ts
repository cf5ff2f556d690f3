/**
 * Clocks that several processes can compare. `performance.now()` counts from each process's own
 * start, so a time taken in a publisher process means nothing in a subscriber process; Node's
 * hrtime reads CLOCK_MONOTONIC, which is one clock for every process on the machine (Linux
 * clock_gettime(2)). mosquitto_sub can only stamp wall-clock time (`-F %U`), hence realtimeMs.
 */

/** CLOCK_MONOTONIC in milliseconds, with sub-microsecond resolution: comparable across processes. */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/**
 * Wall-clock time in milliseconds with microsecond resolution: Node's time origin (wall clock
 * read once at start) plus the monotonic time since. Comparable with another program's
 * CLOCK_REALTIME stamps to within a few microseconds, unless the clock is stepped meanwhile.
 */
export function realtimeMs(): number {
  return performance.timeOrigin + performance.now();
}

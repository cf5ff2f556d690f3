/**
 * The bounds of the recent-values store (recent-sink.ts), each with why. Topics x history per topic
 * alone would let the OT side choose the memory (10,000 topics of 10,000 entries would be 100
 * million), so the history is also bounded store-wide (recent-budget.ts): memory and the snapshot
 * are at most the budget's entries plus one current value per topic, whatever the topic count.
 */

/** Topics the store holds: an IT agent consumes a few OT agents of hundreds of points each. */
export const MAX_RECENT_TOPICS = 10_000;
/** Default entries kept per topic: 10 minutes of a point read every second, a trend's worth. */
export const DEFAULT_HISTORY_PER_TOPIC = 600;
/** The most a topic may keep: beyond this a historian (the JSON Lines sink) is the right store. */
export const MAX_HISTORY_PER_TOPIC = 10_000;
/**
 * Default history entries across all topics: ~190 bytes each in memory and ~160 in the snapshot
 * (measured), so ~190 MB and a ~160 MB snapshot at most; 1,600 topics of the default 600 fit.
 */
export const DEFAULT_HISTORY_ENTRIES = 1_000_000;
/** The largest budget: ~2 GB of memory; beyond, a historian (the JSON Lines sink) is the store. */
export const MAX_HISTORY_ENTRIES = 10_000_000;
/** Default age beyond which an entry leaves the history (the current value always stays). */
export const DEFAULT_MAX_AGE = '1h';
/**
 * How often the snapshot is rewritten while entries arrive. A crash loses at most this much of
 * the store, which the consumer then replays from the OT agent's log: nothing is lost, only
 * fetched again. Each snapshot is one file write and two fsyncs.
 */
export const DEFAULT_SNAPSHOT_INTERVAL = '10s';

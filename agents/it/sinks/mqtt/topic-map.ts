/**
 * Where an OT topic goes on the broker: the mapping whose `from` is the longest prefix of the
 * topic, by whole levels, replaces that prefix with its `to`; a topic no mapping takes gets the
 * bridge's `prefix` in front (or stays as it is). `press-7/line1` -> `plant/hall-a/press-7` sends
 * `press-7/line1/temp` to `plant/hall-a/press-7/temp`. Computed once per topic and kept: the
 * mapping runs for every point.
 */

export interface TopicMapping {
  readonly from: string;
  readonly to: string;
}

/** Topics whose broker topic is kept; a bridge carries at most a few OT agents' streams. */
const MAX_CACHED_TOPICS = 65_536;

export class TopicMap {
  /** Longest first: the first that fits is the longest. */
  readonly #mappings: readonly TopicMapping[];
  readonly #prefix: string | undefined;
  readonly #cache = new Map<string, string>();

  constructor(mappings: readonly TopicMapping[], prefix: string | undefined) {
    this.#mappings = [...mappings].sort((a, b) => b.from.length - a.from.length);
    this.#prefix = prefix;
  }

  brokerTopic(topic: string): string {
    const cached = this.#cache.get(topic);
    if (cached !== undefined) return cached;
    const mapped = this.#map(topic);
    if (this.#cache.size >= MAX_CACHED_TOPICS) this.#cache.clear();
    this.#cache.set(topic, mapped);
    return mapped;
  }

  #map(topic: string): string {
    for (const { from, to } of this.#mappings) {
      if (topic === from) return to;
      if (topic.startsWith(from) && topic[from.length] === '/') return to + topic.slice(from.length);
    }
    return this.#prefix === undefined ? topic : `${this.#prefix}/${topic}`;
  }
}

/**
 * The point topics one MQTT source writes, claimed as messages reveal them: each is checked against
 * the relay's topic grammar under `<agent>/<prefix>/`, counted against MAX_TOPICS_PER_SOURCE, and
 * owned by the one mapping or Sparkplug metric that made it, so two of them never interleave into
 * one stream. It also keeps each topic's last good or uncertain value, which a bad-quality
 * reading repeats.
 */
import type { PointValue } from '../../../points/point.ts';
import { isValidTopic } from '../../../../relay/protocol/topics.ts';
import type { TopicMetadata } from '../source.ts';

export const TOPIC_REFUSALS = ['invalid-topic', 'too-many-topics', 'topic-collision'] as const;
export type TopicRefusal = (typeof TOPIC_REFUSALS)[number];

export type TopicClaim = { readonly topic: string } | { readonly refused: TopicRefusal };

interface TopicEntry {
  readonly owner: string;
  lastValue: PointValue | undefined;
}

export class TopicTable {
  readonly #namespace: string;
  readonly #limit: number;
  readonly #entries = new Map<string, TopicEntry>();
  readonly #metadata = new Map<string, TopicMetadata>();

  /** `namespace` is `<agent>/<prefix>`. */
  constructor(namespace: string, limit: number) {
    this.#namespace = namespace;
    this.#limit = limit;
  }

  /** Every claimed topic, in the order claimed. */
  get topics(): string[] {
    return [...this.#entries.keys()];
  }

  get metadata(): ReadonlyMap<string, TopicMetadata> {
    return this.#metadata;
  }

  /** The full topic of `relative` for `owner`, or why it cannot be written. */
  claim(relative: string, owner: string, metadata: TopicMetadata = {}): TopicClaim {
    const topic = `${this.#namespace}/${relative}`;
    const entry = this.#entries.get(topic);
    if (entry !== undefined) return entry.owner === owner ? { topic } : { refused: 'topic-collision' };
    if (!isValidTopic(topic)) return { refused: 'invalid-topic' };
    if (this.#entries.size >= this.#limit) return { refused: 'too-many-topics' };
    this.#entries.set(topic, { owner, lastValue: undefined });
    this.#metadata.set(topic, metadata);
    return { topic };
  }

  lastValue(topic: string): PointValue | undefined {
    return this.#entries.get(topic)?.lastValue;
  }

  remember(topic: string, value: PointValue): void {
    const entry = this.#entries.get(topic);
    if (entry !== undefined) entry.lastValue = value;
  }

  /** Topics that have a value: what a lost broker makes stale. */
  withValues(): [string, PointValue][] {
    const known: [string, PointValue][] = [];
    for (const [topic, entry] of this.#entries) {
      if (entry.lastValue !== undefined) known.push([topic, entry.lastValue]);
    }
    return known;
  }
}

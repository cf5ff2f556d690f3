/**
 * The MQTT source's config section: its schema, its limits and defaults, and the topics a valid
 * section is known to write before it starts. The checks the schema cannot make are in checks.ts.
 */
import { Type, type Static } from '@sinclair/typebox';
import { MAX_TOPIC_BYTES, MAX_TOPIC_SEGMENT_BYTES } from '../../../../relay/protocol/limits.ts';
import { BrokerSchema, MAX_CLIENT_ID_LENGTH } from '../../../mqtt/broker-config.ts';
import { MAX_UNIT_LENGTH } from '../simulator-config.ts';
import { templateHasPlaceholders } from './topic-template.ts';

export const VALUE_TYPES = ['number', 'boolean', 'string'] as const;
export type ValueType = (typeof VALUE_TYPES)[number];
export const TIMESTAMP_UNITS = ['ms', 's'] as const;
/** A mapping's `value` that takes the whole payload as text, rather than a JSON path into it. */
export const RAW_VALUE = 'raw';

/** Mappings per source: a broker's topic tree is mapped by patterns, not one mapping per point. */
export const MAX_MAPPINGS = 256;
/** MQTT allows 65,535 bytes (MQTT 3.1.1 section 1.5.3); a plant's topic filters are far shorter. */
export const MAX_FILTER_BYTES = 1024;
/** A JSON path names a field a few levels down (`$.data.temp`), not a query. */
export const MAX_JSON_PATH_LENGTH = 256;
/**
 * Readings held in memory while the log is behind (see reading-buffer.ts). About 200 bytes each,
 * 10,000 is ~2 MB: ten seconds of a busy broker at 1,000 messages/s. The most a section may set
 * is ten times that: memory stays bounded by configuration, never by the broker.
 */
export const DEFAULT_BUFFER_READINGS = 10_000;
export const MAX_BUFFER_READINGS = 100_000;
/** A buffer holds at least this much, so a write in flight never takes all of it (half at most). */
export const MIN_BUFFER_READINGS = 2;
/**
 * Point topics one source may write, mapped or discovered (Sparkplug metrics). Each is a stream of
 * the agent's log (65,536 at most per agent) and an entry in memory: a wildcard that matches far
 * more than a plant's points is a mistake, and is refused beyond this rather than filling the log.
 */
export const MAX_TOPICS_PER_SOURCE = 10_000;

const MappingSchema = Type.Object(
  {
    /** An MQTT topic filter; `+` and `#` are the wildcards `{1}`, `{2}`, ... of `topic` stand for. */
    filter: Type.String({ minLength: 1, maxLength: MAX_FILTER_BYTES }),
    /** The point topic under `<agent>/<prefix>/`, e.g. `plant/{1}/temp`. */
    topic: Type.String({ minLength: 1, maxLength: MAX_TOPIC_BYTES }),
    /** `raw` (the payload text) or a JSON path (`$.value`, `$.data.temp`, `$.values[0]`). */
    value: Type.String({ minLength: 1, maxLength: MAX_JSON_PATH_LENGTH, default: RAW_VALUE }),
    /** The point's type: a payload that is not one is a bad-quality reading. */
    type: Type.Union(
      VALUE_TYPES.map((type) => Type.Literal(type)),
      { default: 'number' },
    ),
    /** A JSON path to the source timestamp (a number, or an RFC 3339 string); default: time received. */
    timestamp: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_JSON_PATH_LENGTH })),
    /** What a numeric timestamp counts since the Unix epoch. */
    timestampUnit: Type.Union(
      TIMESTAMP_UNITS.map((unit) => Type.Literal(unit)),
      { default: 'ms' },
    ),
    unit: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_UNIT_LENGTH })),
  },
  { additionalProperties: false },
);

const SparkplugSchema = Type.Object(
  {
    /** The Sparkplug B group id whose edge nodes this source reads. */
    group: Type.String({ minLength: 1, maxLength: MAX_TOPIC_SEGMENT_BYTES }),
    /** One edge node of the group; default: all of them. */
    edgeNode: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_TOPIC_SEGMENT_BYTES })),
  },
  { additionalProperties: false },
);

export const MqttConfigSchema = Type.Object(
  {
    type: Type.Literal('mqtt'),
    /** The source's name in status and metrics: one topic segment. */
    name: Type.String({ minLength: 1, maxLength: MAX_TOPIC_SEGMENT_BYTES }),
    /** Topics are `<agent name>/<prefix>/...`; default: the source's name. */
    prefix: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_TOPIC_BYTES })),
    broker: BrokerSchema,
    /** The QoS of every subscription: the most the broker sends with. */
    qos: Type.Integer({ minimum: 0, maximum: 2, default: 1 }),
    /** Readings held while the log is behind; beyond it the client pauses, then the oldest are dropped. */
    buffer: Type.Integer({
      minimum: MIN_BUFFER_READINGS,
      maximum: MAX_BUFFER_READINGS,
      default: DEFAULT_BUFFER_READINGS,
    }),
    mappings: Type.Array(MappingSchema, { maxItems: MAX_MAPPINGS, default: [] }),
    sparkplug: Type.Optional(SparkplugSchema),
  },
  { additionalProperties: false },
);

export type MqttConfig = Static<typeof MqttConfigSchema>;
export type MqttMappingConfig = MqttConfig['mappings'][number];
export type SparkplugConfig = NonNullable<MqttConfig['sparkplug']>;

export function topicPrefix(config: MqttConfig): string {
  return config.prefix ?? config.name;
}

/**
 * The topics of a valid config known before start, below the agent's namespace: those of mappings
 * without wildcards in their topic. Wildcard mappings and Sparkplug metrics add theirs as they
 * appear (at most MAX_TOPICS_PER_SOURCE).
 */
export function mqttTopics(config: MqttConfig): string[] {
  const prefix = topicPrefix(config);
  return config.mappings
    .filter((mapping) => !templateHasPlaceholders(mapping.topic))
    .map((mapping) => `${prefix}/${mapping.topic}`);
}

export function defaultClientId(agentName: string, config: MqttConfig): string {
  return `${agentName}-${config.name}`.slice(0, MAX_CLIENT_ID_LENGTH);
}

/**
 * The MQTT bridge's config section (`it.sinks[]` with `type: mqtt`): its schema, its limits and
 * defaults, and the checks the schema cannot make, each problem with its key path. The broker
 * keys are the MQTT source's (agents/mqtt/broker-config.ts): one way to name a broker, checked the
 * same way on both sides.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { parseByteSize } from '../../../../relay/protocol/byte-size.ts';
import { collectSchemaIssues } from '../../../../relay/protocol/config-schema.ts';
import type { ConfigIssue } from '../../../../relay/protocol/errors.ts';
import { MAX_TOPIC_BYTES, MAX_TOPIC_SEGMENT_BYTES } from '../../../../relay/protocol/limits.ts';
import { checkTopicText } from '../../../ot/sources/config-checks.ts';
import { BROKER_FILE_KEYS, BrokerSchema, checkBroker } from '../../../mqtt/broker-config.ts';
import { findIdProblem, SPARKPLUG_NAMESPACE } from '../../../ot/sources/mqtt/sparkplug/topics.ts';

/** Topic mappings per bridge: an OT agent's tree is mapped by prefixes, not one mapping per point. */
export const MAX_TOPIC_MAPPINGS = 1024;
/**
 * Messages sent and not yet acknowledged (PUBACK). A broker on the IT network acknowledges in well
 * under a millisecond; a thousand in flight keep a link with 10 ms of latency busy at 100k/s.
 */
export const DEFAULT_IN_FLIGHT_MESSAGES = 1000;
/** MQTT 3.1.1 packet identifiers are 16 bits (section 2.3.1): at most 65,535 can be in flight. */
export const MAX_IN_FLIGHT_MESSAGES = 65_535;
/** Bytes of payload in flight: 1 MiB is a thousand large messages, or one Sparkplug birth of a big device. */
export const DEFAULT_IN_FLIGHT_BYTES = '1MiB';
export const MAX_IN_FLIGHT_BYTES = 64 * 1024 * 1024;
/** The least window in bytes: one message of the largest kind the bridge sends must fit. */
export const MIN_IN_FLIGHT_BYTES = 64 * 1024;
export const DEFAULT_STATUS_PREFIX = 'dmz/status';
/**
 * A sink's name names its state directory (`<state>/sinks/<name>`) and its default client id: a
 * word, never `.`, `..` or a path.
 */
const SINK_NAME = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/;

const BrokerTopic = Type.String({ minLength: 1, maxLength: MAX_TOPIC_BYTES });
const SparkplugId = Type.String({ minLength: 1, maxLength: MAX_TOPIC_SEGMENT_BYTES });

export const MqttSinkConfigSchema = Type.Object(
  {
    type: Type.Literal('mqtt'),
    name: Type.String({ minLength: 1, maxLength: 63 }),
    /** Where to publish: the broker keys of every MQTT section. */
    broker: BrokerSchema,
    /** Broker topics are `<prefix>/<OT topic>` unless a mapping names them; default: the OT topic. */
    prefix: Type.Optional(BrokerTopic),
    /** OT topic prefix -> broker topic prefix, by whole levels; the longest `from` that fits wins. */
    topics: Type.Array(Type.Object({ from: BrokerTopic, to: BrokerTopic }, { additionalProperties: false }), {
      maxItems: MAX_TOPIC_MAPPINGS,
      default: [],
    }),
    /** JSON points are retained: a subscriber that comes later gets each topic's last value at once. */
    retain: Type.Boolean({ default: true }),
    /** JSON only: `<prefix>/<agent>` says online/offline, retained; the bridge's own one is its will. */
    status: Type.Object(
      { prefix: Type.String({ minLength: 1, maxLength: MAX_TOPIC_BYTES, default: DEFAULT_STATUS_PREFIX }) },
      { additionalProperties: false, default: {} },
    ),
    /** Publish Sparkplug B instead of JSON: the bridge is an edge node, each OT agent a device. */
    sparkplug: Type.Optional(
      Type.Object(
        {
          group: SparkplugId,
          /** Default: the IT agent's name. */
          edgeNode: Type.Optional(SparkplugId),
        },
        { additionalProperties: false },
      ),
    ),
    inFlight: Type.Object(
      {
        messages: Type.Integer({
          minimum: 1,
          maximum: MAX_IN_FLIGHT_MESSAGES,
          default: DEFAULT_IN_FLIGHT_MESSAGES,
        }),
        bytes: Type.Union([Type.String({ maxLength: 24 }), Type.Integer({ minimum: 0 })], {
          default: DEFAULT_IN_FLIGHT_BYTES,
        }),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false },
);

type RawMqttSinkConfig = Static<typeof MqttSinkConfigSchema>;

/** A checked section: file paths resolved, the window in bytes as a number. */
export interface MqttSinkConfig extends Omit<RawMqttSinkConfig, 'inFlight'> {
  readonly inFlight: { readonly messages: number; readonly bytes: number };
}

/**
 * What the agent config's union of sink sections knows of an MQTT one: its type. The rest is
 * checked by resolveMqttSink, which names each key that is wrong (a union's schema error would
 * only say that the section matches none of its members).
 */
export const MqttSinkSection = Type.Object({ type: Type.Literal('mqtt') }, { additionalProperties: true });

/**
 * An MQTT sink section (`input`, at `at` such as `/it/sinks/1`) resolved: defaults filled in, file
 * paths resolved by `resolvePath` (relative to the config file); every problem pushed to `issues`
 * with its key path. The result is only meaningful when no issue was pushed.
 */
export function resolveMqttSink(
  input: unknown,
  at: string,
  resolvePath: (path: string) => string,
  issues: ConfigIssue[],
): MqttSinkConfig {
  const value = structuredClone(input) as RawMqttSinkConfig;
  Value.Default(MqttSinkConfigSchema, value);
  const shape = collectSchemaIssues(MqttSinkConfigSchema, value, at);
  issues.push(...shape);
  // The semantic checks assume the shape; while it is wrong, its errors say enough.
  if (shape.length > 0) return value as unknown as MqttSinkConfig;
  if (!SINK_NAME.test(value.name)) {
    issues.push({ path: `${at}/name`, message: 'must be letters, digits, "_", "-" or "." (not first)' });
  }
  checkBroker(issues, `${at}/broker`, value.broker);
  if (value.prefix !== undefined) checkTopicText(issues, `${at}/prefix`, value.prefix);
  const froms = new Map<string, string>();
  value.topics.forEach((mapping, index) => {
    const path = `${at}/topics/${index}`;
    checkTopicText(issues, `${path}/from`, mapping.from);
    checkTopicText(issues, `${path}/to`, mapping.to);
    const first = froms.get(mapping.from);
    if (first === undefined) froms.set(mapping.from, `${path}/from`);
    else issues.push({ path: `${path}/from`, message: `${mapping.from} is mapped at ${first} already` });
  });
  const given = input as Partial<Record<'status' | 'retain' | 'topics' | 'prefix', unknown>>;
  if (value.sparkplug === undefined) {
    checkTopicText(issues, `${at}/status/prefix`, value.status.prefix);
  } else {
    const { group, edgeNode } = value.sparkplug;
    for (const [key, id] of [
      ['group', group],
      ['edgeNode', edgeNode],
    ] as const) {
      const problem = id === undefined ? undefined : findIdProblem(id);
      if (problem !== undefined) issues.push({ path: `${at}/sparkplug/${key}`, message: problem });
    }
    // Sparkplug has its own namespace, status and retain rules (Sparkplug 3.0, topics section).
    for (const key of ['status', 'retain', 'topics', 'prefix'] as const) {
      if (given[key] !== undefined) {
        issues.push({
          path: `${at}/${key}`,
          message: `does not apply with sparkplug: topics are ${SPARKPLUG_NAMESPACE}/<group>/..., births and deaths are the status, nothing is retained`,
        });
      }
    }
  }
  const bytes = parseByteSize(value.inFlight.bytes);
  if (bytes === undefined || bytes < MIN_IN_FLIGHT_BYTES || bytes > MAX_IN_FLIGHT_BYTES) {
    issues.push({ path: `${at}/inFlight/bytes`, message: 'must be a size like 1MiB, from 64KiB to 64MiB' });
  }
  const broker = { ...value.broker };
  // Relative to the config file, as every path of agent.yaml.
  for (const key of BROKER_FILE_KEYS) {
    const path = broker[key];
    if (path !== undefined) broker[key] = resolvePath(path);
  }
  return { ...value, broker, inFlight: { messages: value.inFlight.messages, bytes: bytes ?? 0 } };
}

/**
 * What a checked MQTT sink section makes: the format it publishes in, and the broker connection's
 * settings (agents/mqtt/broker-settings.ts; the bridge subscribes to its format's commands).
 */
import { brokerSettings, type BrokerSettings } from '../../../mqtt/broker-settings.ts';
import type { BridgeFormat } from './bridge-format.ts';
import { BRIDGE_QOS } from './bridge-connection.ts';
import type { MqttSinkConfig } from './config.ts';
import { JsonFormat } from './json-format.ts';
import { SparkplugFormat } from './sparkplug-format.ts';
import { TopicMap } from './topic-map.ts';

export interface BridgeFormats {
  readonly format: BridgeFormat;
  /** The same format when it is Sparkplug B (its bdSeq is kept across restarts, its stats shown). */
  readonly sparkplug: SparkplugFormat | undefined;
}

export function createBridgeFormat(
  config: MqttSinkConfig,
  agentName: string,
  lastBdSeq: number | undefined,
  now: () => number,
): BridgeFormats {
  if (config.sparkplug === undefined) {
    const format = new JsonFormat({
      topics: new TopicMap(config.topics, config.prefix),
      retain: config.retain,
      statusPrefix: config.status.prefix,
      agentName,
    });
    return { format, sparkplug: undefined };
  }
  const sparkplug = new SparkplugFormat({
    group: config.sparkplug.group,
    edgeNode: config.sparkplug.edgeNode ?? agentName,
    lastBdSeq,
    now,
  });
  return { format: sparkplug, sparkplug };
}

/** The connection's settings; the client id defaults to `<agent>-<sink>`, stable across restarts. */
export function bridgeBrokerSettings(
  config: MqttSinkConfig,
  agentName: string,
  format: BridgeFormat,
): BrokerSettings {
  return brokerSettings(config.broker, {
    defaultClientId: `${agentName}-${config.name}`,
    qos: BRIDGE_QOS,
    filters: format.subscriptions(),
  });
}

/**
 * What a checked MQTT sink section makes: the format it publishes in, and the broker connection's
 * settings (the MQTT source's BrokerSettings: the parsed address, the client id, credentials as
 * file paths read at each attempt, the commands it subscribes to).
 */
import { parseDuration } from '../../../../pki/duration.ts';
import type { BrokerSettings } from '../../../ot/sources/mqtt/broker-connection.ts';
import { parseBrokerUrl } from '../../../ot/sources/mqtt/broker-url.ts';
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
  const { broker } = config;
  const address = parseBrokerUrl(broker.url);
  if (typeof address === 'string') throw new RangeError(`unchecked broker URL: ${address}`);
  const keepaliveMs = parseDuration(broker.keepalive, { milliseconds: true });
  if (keepaliveMs === undefined) throw new RangeError(`unchecked keepalive: ${broker.keepalive}`);
  return {
    address,
    clientId: broker.clientId ?? `${agentName}-${config.name}`,
    username: broker.username,
    passwordFile: broker.passwordFile,
    caFile: broker.ca,
    certFile: broker.cert,
    keyFile: broker.key,
    localAddress: broker.localAddress,
    keepaliveSeconds: keepaliveMs / 1000,
    clean: broker.clean,
    qos: BRIDGE_QOS,
    filters: format.subscriptions(),
  };
}

/**
 * The broker connection's settings from a checked MQTT section: the parsed address, the client id
 * (default `<agent>-<source>`), credentials as file paths (read at each attempt), and every filter
 * the source subscribes to, mappings' and Sparkplug's, once each.
 */
import type { BrokerSettings } from './broker-connection.ts';
import { parseBrokerUrl } from './broker-url.ts';
import { defaultClientId, type MqttConfig } from './config.ts';
import { sparkplugFilters } from './sparkplug/topics.ts';

export function brokerSettings(config: MqttConfig, agentName: string, keepaliveMs: number): BrokerSettings {
  const { broker } = config;
  const address = parseBrokerUrl(broker.url);
  if (typeof address === 'string') throw new RangeError(`unchecked broker URL: ${address}`);
  const filters = new Set(config.mappings.map((mapping) => mapping.filter));
  if (config.sparkplug !== undefined)
    for (const filter of sparkplugFilters(config.sparkplug)) filters.add(filter);
  return {
    address,
    clientId: broker.clientId ?? defaultClientId(agentName, config),
    username: broker.username,
    passwordFile: broker.passwordFile,
    caFile: broker.ca,
    certFile: broker.cert,
    keyFile: broker.key,
    localAddress: broker.localAddress,
    keepaliveSeconds: keepaliveMs / 1000,
    clean: broker.clean,
    qos: config.qos as 0 | 1 | 2,
    filters: [...filters],
  };
}

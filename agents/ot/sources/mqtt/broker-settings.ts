/**
 * The MQTT source's broker settings (agents/mqtt/broker-settings.ts) from a checked section: the
 * client id defaults to `<agent>-<source>`, and the source subscribes to every filter of its
 * mappings and of Sparkplug, once each, at the section's QoS.
 */
import { brokerSettings, type BrokerSettings } from '../../../mqtt/broker-settings.ts';
import { defaultClientId, type MqttConfig } from './config.ts';
import { sparkplugFilters } from './sparkplug/topics.ts';

export function sourceBrokerSettings(config: MqttConfig, agentName: string): BrokerSettings {
  const filters = new Set(config.mappings.map((mapping) => mapping.filter));
  if (config.sparkplug !== undefined)
    for (const filter of sparkplugFilters(config.sparkplug)) filters.add(filter);
  return brokerSettings(config.broker, {
    defaultClientId: defaultClientId(agentName, config),
    qos: config.qos as 0 | 1 | 2,
    filters: [...filters],
  });
}

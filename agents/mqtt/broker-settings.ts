/**
 * What a checked `broker` section makes for the connection: the parsed address, the client id,
 * credentials as file paths (read at each attempt), the keep alive in seconds, and what the side
 * subscribes to (the source's mappings and Sparkplug filters, the bridge's commands).
 */
import { parseDuration } from '../../pki/duration.ts';
import type { MqttBrokerConfig } from './broker-config.ts';
import { parseBrokerUrl, type BrokerAddress } from './broker-url.ts';

export interface BrokerSettings {
  readonly address: BrokerAddress;
  readonly clientId: string;
  readonly username: string | undefined;
  readonly passwordFile: string | undefined;
  readonly caFile: string | undefined;
  readonly certFile: string | undefined;
  readonly keyFile: string | undefined;
  readonly localAddress: string | undefined;
  readonly keepaliveSeconds: number;
  readonly clean: boolean;
  readonly qos: 0 | 1 | 2;
  readonly filters: readonly string[];
}

/** What the side decides: the client id when the section names none, and its subscriptions. */
export interface SubscriberSettings {
  readonly defaultClientId: string;
  readonly qos: 0 | 1 | 2;
  readonly filters: readonly string[];
}

/** The settings of a section that passed checkBroker (anything else is a bug: RangeError). */
export function brokerSettings(broker: MqttBrokerConfig, subscriber: SubscriberSettings): BrokerSettings {
  const address = parseBrokerUrl(broker.url);
  if (typeof address === 'string') throw new RangeError(`unchecked broker URL: ${address}`);
  const keepaliveMs = parseDuration(broker.keepalive, { milliseconds: true });
  if (keepaliveMs === undefined) throw new RangeError(`unchecked keepalive: ${broker.keepalive}`);
  return {
    address,
    clientId: broker.clientId ?? subscriber.defaultClientId,
    username: broker.username,
    passwordFile: broker.passwordFile,
    caFile: broker.ca,
    certFile: broker.cert,
    keyFile: broker.key,
    localAddress: broker.localAddress,
    keepaliveSeconds: keepaliveMs / 1000,
    clean: broker.clean,
    qos: subscriber.qos,
    filters: subscriber.filters,
  };
}

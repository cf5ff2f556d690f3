/**
 * The broker's address as the config writes it, for the MQTT source and the MQTT bridge alike:
 * `mqtt://host[:port]` (TCP) or `mqtts://host[:port]` (TLS). Nothing else: no credentials in the
 * URL (they belong in `username` and `passwordFile`, out of a file that is copied around), no path,
 * no query, no WebSocket.
 */

export const BROKER_PROTOCOLS = { 'mqtt:': 'mqtt', 'mqtts:': 'mqtts' } as const;
export type BrokerProtocol = (typeof BROKER_PROTOCOLS)[keyof typeof BROKER_PROTOCOLS];

/** A DNS name or an IP literal: letters, digits and the punctuation of DNS names and IPv6. */
const HOST_PATTERN = /^[A-Za-z0-9._:-]+$/;
/** The IANA ports of MQTT and MQTT over TLS. */
const DEFAULT_PORTS: Record<BrokerProtocol, number> = { mqtt: 1883, mqtts: 8883 };

export interface BrokerAddress {
  readonly protocol: BrokerProtocol;
  /** A host name or an IP literal (IPv6 without brackets). */
  readonly host: string;
  readonly port: number;
}

/** The address, or a message saying what is wrong with the URL. */
export function parseBrokerUrl(text: string): BrokerAddress | string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'must be a URL like mqtt://broker.local:1883 or mqtts://broker.local:8883';
  }
  const protocol = Object.hasOwn(BROKER_PROTOCOLS, url.protocol)
    ? BROKER_PROTOCOLS[url.protocol as keyof typeof BROKER_PROTOCOLS]
    : undefined;
  if (protocol === undefined) return 'must start with mqtt:// or mqtts://';
  if (url.username !== '' || url.password !== '') {
    return 'must not hold credentials: use username and passwordFile';
  }
  if (url.hostname === '') return 'names no host';
  if ((url.pathname !== '' && url.pathname !== '/') || url.search !== '' || url.hash !== '') {
    return 'must be just the scheme, host and port (no path, query or fragment)';
  }
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  if (!HOST_PATTERN.test(host)) return 'host must be a DNS name or an IP address';
  const port = url.port === '' ? DEFAULT_PORTS[protocol] : Number(url.port);
  if (port < 1) return 'port must be from 1 to 65535';
  return { protocol, host, port };
}

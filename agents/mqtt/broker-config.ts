/**
 * The `broker` section of an MQTT config section: the keys that name a broker and how to reach
 * it, one schema for the OT agent's MQTT source and the IT agent's MQTT bridge, checked the same
 * way on both sides. Each problem names its key path. Files are read when connecting (a renewed
 * certificate is picked up by the next connection), not here.
 */
import { isIP } from 'node:net';
import { Type, type Static } from '@sinclair/typebox';
import type { ConfigIssue } from '../../relay/protocol/errors.ts';
import { checkDuration } from '../ot/sources/config-checks.ts';
import { parseBrokerUrl } from './broker-url.ts';

/** MQTT 3.1.1 section 3.1.3.1 only promises 23 bytes; brokers take more, and 128 is plenty. */
export const MAX_CLIENT_ID_LENGTH = 128;
/** The keep alive is a two-byte count of seconds (MQTT 3.1.1 section 3.1.2.10). */
export const MIN_KEEPALIVE_MS = 1_000;
export const MAX_KEEPALIVE_MS = 65_535_000;
/** A file path or a user name: long enough for any real one. */
const MAX_PATH_LENGTH = 4096;
const MAX_USERNAME_LENGTH = 256;
const MAX_URL_LENGTH = 2048;

const FilePath = Type.String({ minLength: 1, maxLength: MAX_PATH_LENGTH });
/** The keys of a broker section that name files. */
export const BROKER_FILE_KEYS = ['passwordFile', 'ca', 'cert', 'key'] as const;

export const BrokerSchema = Type.Object(
  {
    /** `mqtt://host[:port]` or `mqtts://host[:port]`; no credentials in the URL. */
    url: Type.String({ minLength: 1, maxLength: MAX_URL_LENGTH }),
    /** Default `<agent name>-<section name>`: stable, so a persistent session (clean: false) is found again. */
    clientId: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_CLIENT_ID_LENGTH })),
    username: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_USERNAME_LENGTH })),
    /** A file holding the password (trailing newline ignored), read at every connection attempt. */
    passwordFile: Type.Optional(FilePath),
    /** mqtts only: the CA certificates (PEM) the broker's certificate must chain to; default the system's. */
    ca: Type.Optional(FilePath),
    /** mqtts only: a client certificate and its key (PEM), for brokers that ask for one. */
    cert: Type.Optional(FilePath),
    key: Type.Optional(FilePath),
    /** The local IP address connections leave from: the NIC that faces the broker (dual-homed hosts). */
    localAddress: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    keepalive: Type.String({ maxLength: 16, default: '30s' }),
    /** false: a persistent session, so the broker keeps QoS 1/2 messages while the agent is away. */
    clean: Type.Boolean({ default: true }),
  },
  { additionalProperties: false },
);

export type MqttBrokerConfig = Static<typeof BrokerSchema>;

/** The section's problems that its schema cannot find, with key paths under `at`. */
export function checkBroker(issues: ConfigIssue[], at: string, broker: MqttBrokerConfig): void {
  const address = parseBrokerUrl(broker.url);
  if (typeof address === 'string') issues.push({ path: `${at}/url`, message: address });
  const tls = typeof address === 'object' && address.protocol === 'mqtts';
  for (const key of ['ca', 'cert', 'key'] as const) {
    if (broker[key] !== undefined && typeof address === 'object' && !tls) {
      issues.push({ path: `${at}/${key}`, message: 'applies to mqtts:// only' });
    }
  }
  if ((broker.cert === undefined) !== (broker.key === undefined)) {
    const missing = broker.cert === undefined ? 'cert' : 'key';
    issues.push({ path: `${at}/${missing}`, message: 'is required with cert and key: they go together' });
  }
  // MQTT 3.1.1 section 3.1.2.9: a password is only sent after a user name.
  if (broker.passwordFile !== undefined && broker.username === undefined) {
    issues.push({
      path: `${at}/username`,
      message: 'is required with passwordFile (MQTT 3.1.1 section 3.1.2.9)',
    });
  }
  if (broker.clientId?.includes('\u0000') === true) {
    issues.push({ path: `${at}/clientId`, message: 'must not hold a NUL character' });
  }
  if (broker.localAddress !== undefined && isIP(broker.localAddress) === 0) {
    issues.push({ path: `${at}/localAddress`, message: 'must be an IP address of this host' });
  }
  const keepaliveMs = checkDuration(
    issues,
    `${at}/keepalive`,
    broker.keepalive,
    MIN_KEEPALIVE_MS,
    MAX_KEEPALIVE_MS,
  );
  if (keepaliveMs !== undefined && keepaliveMs % 1000 !== 0) {
    issues.push({ path: `${at}/keepalive`, message: 'must be whole seconds: MQTT counts it in seconds' });
  }
}

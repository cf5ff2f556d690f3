/**
 * The options every OPCUAClient of a source is made with, in one place: the client's identity and
 * PKI, the security the section asks for, the reconnect waits, the local address it leaves from.
 */
import './library-log.ts';
import {
  MessageSecurityMode,
  SecurityPolicy as NodeSecurityPolicy,
  type ConnectionStrategyOptions,
  type OPCUAClientOptions,
} from 'node-opcua';
import { transportFactory } from './transport.ts';
import type { ClientPki } from './client-pki.ts';
import type { OpcuaSettings, SecurityMode, SecurityPolicy } from './config.ts';

export const APPLICATION_NAME = 'dmz-agent';
/**
 * node-opcua's own reconnect waits double from reconnectBase to reconnectCap, each spread by
 * ±20 %: enough that the sources of many agents do not all come back to a restarted server at once.
 */
const RECONNECT_RANDOMISATION = 0.2;
/**
 * A subscription's keep-alive (Part 4 §5.13.1.1): with nothing to report, the server still answers
 * about every 10 s, so a dead server is noticed that soon even on a quiet subscription.
 */
const KEEP_ALIVE_TARGET_MS = 10_000;
/**
 * How long the server keeps the subscription, and the session, without hearing from us: a minute
 * at least, so that a network break or a client restart that short resumes them (the subscription
 * is transferred, Part 4 §5.13.7) and no change is lost.
 */
const LIFETIME_TARGET_MS = 60_000;
/** Part 4 §5.13.2.2: the lifetime count must be at least three times the keep-alive count. */
const MIN_LIFETIME_KEEP_ALIVES = 3;

export const MODES: Readonly<Record<SecurityMode, MessageSecurityMode>> = {
  None: MessageSecurityMode.None,
  Sign: MessageSecurityMode.Sign,
  SignAndEncrypt: MessageSecurityMode.SignAndEncrypt,
};

export const POLICY_URIS: Readonly<Record<SecurityPolicy, NodeSecurityPolicy>> = {
  None: NodeSecurityPolicy.None,
  Basic256Sha256: NodeSecurityPolicy.Basic256Sha256,
  Aes128_Sha256_RsaOaep: NodeSecurityPolicy.Aes128_Sha256_RsaOaep,
  Aes256_Sha256_RsaPss: NodeSecurityPolicy.Aes256_Sha256_RsaPss,
};

/** Retry forever with the section's waits; `maxRetry: 0` for one attempt (the trust command). */
export function connectionStrategy(settings: OpcuaSettings, maxRetry = -1): ConnectionStrategyOptions {
  return {
    maxRetry,
    initialDelay: settings.reconnectBaseMs,
    maxDelay: settings.reconnectCapMs,
    randomisationFactor: RECONNECT_RANDOMISATION,
  };
}

export interface ClientSecurity {
  readonly mode: SecurityMode;
  readonly policy: SecurityPolicy;
  /**
   * The server's chain the source verified itself (connection.ts): node-opcua then needs no
   * discovery of its own, which would neither leave from localAddress nor report why it failed.
   */
  readonly serverCertificate?: readonly Buffer[];
}

export interface ClientBehaviour {
  readonly strategy: ConnectionStrategyOptions;
  /** Every failed connection attempt's error (node-opcua retries them in silence). */
  readonly onConnectError?: (error: Error) => void;
}

export function clientOptions(
  settings: OpcuaSettings,
  pki: ClientPki,
  security: ClientSecurity,
  behaviour: ClientBehaviour,
): OPCUAClientOptions {
  return {
    applicationName: APPLICATION_NAME,
    applicationUri: pki.applicationUri,
    clientName: APPLICATION_NAME,
    clientCertificateManager: pki.manager,
    certificateFile: pki.certificateFile,
    privateKeyFile: pki.privateKeyFile,
    securityMode: MODES[security.mode],
    securityPolicy: POLICY_URIS[security.policy],
    ...(security.serverCertificate === undefined
      ? {}
      : { serverCertificate: [...security.serverCertificate] }),
    connectionStrategy: behaviour.strategy,
    requestedSessionTimeout: sessionTimeoutMs(settings),
    // Plants reach servers by IP while servers advertise their host names: the security is the
    // verified certificate and the configured mode and policy, not the advertised URL.
    endpointMustExist: false,
    transportFactory: transportFactory({
      localAddress: settings.localAddress,
      onConnectError: behaviour.onConnectError ?? (() => undefined),
    }),
  };
}

/** The subscription's request: the section's publishing interval, keep-alive and lifetime counts. */
export function subscriptionParameters(settings: OpcuaSettings) {
  const interval = settings.publishingIntervalMs;
  const keepAlive = Math.max(1, Math.round(KEEP_ALIVE_TARGET_MS / interval));
  return {
    requestedPublishingInterval: interval,
    requestedMaxKeepAliveCount: keepAlive,
    requestedLifetimeCount: Math.max(
      MIN_LIFETIME_KEEP_ALIVES * keepAlive,
      Math.ceil(LIFETIME_TARGET_MS / interval),
    ),
    maxNotificationsPerPublish: 0,
    publishingEnabled: true,
    priority: 0,
  };
}

/**
 * The session outlives the subscription's lifetime, so a transfer after a break finds it; and a
 * keep-alive (one publish answered) comes well inside it, or the server would time the session out.
 */
export function sessionTimeoutMs(settings: OpcuaSettings): number {
  const subscription = subscriptionParameters(settings);
  return Math.max(LIFETIME_TARGET_MS, subscription.requestedLifetimeCount * settings.publishingIntervalMs);
}

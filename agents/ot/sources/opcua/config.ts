/**
 * The OPC UA source's config section: its schema, its limits, and the items it resolves to
 * (defaults filled in, durations in milliseconds). The checks the schema cannot make are in
 * checks.ts. References are to the OPC UA specification, Part 4 (Services) and Part 7 (Profiles),
 * release 1.05.
 */
import { Type, type Static } from '@sinclair/typebox';
import { parseDuration } from '../../../../pki/duration.ts';
import { MAX_TOPIC_BYTES, MAX_TOPIC_SEGMENT_BYTES } from '../../../../relay/protocol/limits.ts';

/** Part 4 §7.20 MessageSecurityMode, by the names node-opcua and every OPC UA tool use. */
export const SECURITY_MODES = ['None', 'Sign', 'SignAndEncrypt'] as const;
export type SecurityMode = (typeof SECURITY_MODES)[number];

/**
 * Security policies offered with Sign and SignAndEncrypt (Part 7, "Security Policy" profiles):
 * Basic256Sha256 and the two newer RSA ones. None goes with mode None only.
 */
export const SECURITY_POLICIES = ['Basic256Sha256', 'Aes128_Sha256_RsaOaep', 'Aes256_Sha256_RsaPss'] as const;
export type SecurityPolicy = (typeof SECURITY_POLICIES)[number] | 'None';
/**
 * Deprecated since OPC UA 1.04 (SHA-1 signatures; Basic128Rsa15 also needs RSA PKCS#1 v1.5
 * decryption, which Node refuses since CVE-2023-46809): named, so that asking for one is answered
 * with why, not with "must be one of".
 */
export const DEPRECATED_POLICIES = ['Basic128Rsa15', 'Basic256'] as const;
export const DEFAULT_SECURED_POLICY: SecurityPolicy = 'Basic256Sha256';

/**
 * Monitored items in one source. Each is a stream of the log (at most 65,536 per agent) and a
 * monitored item on the server, whose limits are often in the thousands per session: 10,000 is
 * a large SCADA server's worth, and leaves room in the log for other sources.
 */
export const MAX_ITEMS_PER_SOURCE = 10_000;
/**
 * Sampling and publishing intervals: 10 ms is the fastest a server samples in practice (most
 * revise faster requests up to their minimum), an hour the slowest worth a subscription.
 */
export const MIN_INTERVAL_MS = 10;
export const MAX_INTERVAL_MS = 3_600_000;
/**
 * Values a server queues per item between two publishes (Part 4 §5.13.1.4). 1,000 covers a fast
 * item (10 ms) published every 10 s; beyond that a server runs out of memory before we do.
 */
export const MAX_QUEUE_SIZE = 1000;
/** Reconnect waits: from 100 ms (a restarting server) to 10 minutes (a device gone for the night). */
export const MIN_RECONNECT_MS = 100;
export const MAX_RECONNECT_MS = 600_000;
/** An endpoint URL is `opc.tcp://host:port/path`: a host name and a short path. */
export const MAX_ENDPOINT_URL_LENGTH = 512;
/** A node id names a tag (`ns=2;s=Line1.Press7.Temperature`), not a document. */
export const MAX_NODE_ID_LENGTH = 1024;
/** User names of OPC UA servers are account names. */
export const MAX_USER_NAME_LENGTH = 256;
/** A unit is a symbol (`degC`, `m3/h`, `kPa`), not a description. */
export const MAX_UNIT_LENGTH = 32;
/** Paths of the files the section names (password, server certificate). */
export const MAX_PATH_LENGTH = 4096;

const Duration = (fallback: string) => Type.String({ maxLength: 16, default: fallback });

const ItemSchema = Type.Object(
  {
    /** The topic is `<agent>/<prefix>/<name>`: one topic segment. */
    name: Type.String({ minLength: 1, maxLength: MAX_TOPIC_SEGMENT_BYTES }),
    /** The node's id in the string form of Part 6 §5.3.1.10: `ns=2;s=Tag`, `i=2258`, `ns=1;g=...`. */
    nodeId: Type.String({ minLength: 1, maxLength: MAX_NODE_ID_LENGTH }),
    /** Default: the section's samplingInterval. */
    samplingInterval: Type.Optional(Type.String({ maxLength: 16 })),
    /** Default: the section's queueSize. */
    queueSize: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_QUEUE_SIZE })),
    /** Informational: kept in the source's topic metadata, never in the point encoding. */
    unit: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_UNIT_LENGTH })),
  },
  { additionalProperties: false },
);

const SecuritySchema = Type.Object(
  {
    /** Secure unless told otherwise: None must be asked for. */
    mode: Type.Union(
      SECURITY_MODES.map((mode) => Type.Literal(mode)),
      { default: 'SignAndEncrypt' },
    ),
    /** Default: None with mode None, Basic256Sha256 otherwise. Checked in checks.ts, to name deprecated ones. */
    policy: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    /**
     * The server's certificate (PEM or DER), trusted when the source starts: the alternative to
     * `dmz-agent opcua trust`. An absolute path.
     */
    serverCertificate: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_PATH_LENGTH })),
  },
  { additionalProperties: false, default: {} },
);

const UserSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: MAX_USER_NAME_LENGTH }),
    /** The password is in this file (absolute path, open to its owner alone), never in the config. */
    passwordFile: Type.String({ minLength: 1, maxLength: MAX_PATH_LENGTH }),
  },
  { additionalProperties: false },
);

export const OpcuaConfigSchema = Type.Object(
  {
    type: Type.Literal('opcua'),
    /** The source's name in status and metrics: one topic segment; its state is `<state>/sources/<name>`. */
    name: Type.String({ minLength: 1, maxLength: MAX_TOPIC_SEGMENT_BYTES }),
    /** Topics are `<agent name>/<prefix>/<item name>`; default: the source's name. */
    prefix: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_TOPIC_BYTES })),
    /** The server: `opc.tcp://plc1.plant.local:4840`. */
    endpoint: Type.String({ minLength: 1, maxLength: MAX_ENDPOINT_URL_LENGTH }),
    security: SecuritySchema,
    /** Absent: an anonymous session. */
    user: Type.Optional(UserSchema),
    /** The local address the connection leaves from (a dual-homed host's device-side NIC). */
    localAddress: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    /** How often the server sends what changed (Part 4 §5.13.2.2). */
    publishingInterval: Duration('1s'),
    /** Items' defaults (Part 4 §5.12.1.2, §5.12.1.5). */
    samplingInterval: Duration('1s'),
    queueSize: Type.Integer({ minimum: 1, maximum: MAX_QUEUE_SIZE, default: 10 }),
    /** Waits between connection attempts: doubling from reconnectBase up to reconnectCap. */
    reconnectBase: Duration('1s'),
    reconnectCap: Duration('20s'),
    items: Type.Array(ItemSchema, { minItems: 1, maxItems: MAX_ITEMS_PER_SOURCE }),
  },
  { additionalProperties: false },
);

export type OpcuaConfig = Static<typeof OpcuaConfigSchema>;

/** One monitored item, defaults filled in. */
export interface MonitoredItemSpec {
  readonly name: string;
  /** `<agent>/<prefix>/<name>`. */
  readonly topic: string;
  readonly nodeId: string;
  readonly samplingIntervalMs: number;
  readonly queueSize: number;
  readonly unit: string | undefined;
}

/** A valid section with its defaults resolved: what the connection works from. */
export interface OpcuaSettings {
  readonly sourceName: string;
  readonly endpoint: string;
  readonly securityMode: SecurityMode;
  readonly securityPolicy: SecurityPolicy;
  readonly serverCertificateFile: string | undefined;
  readonly localAddress: string | undefined;
  readonly publishingIntervalMs: number;
  readonly reconnectBaseMs: number;
  readonly reconnectCapMs: number;
  readonly items: readonly MonitoredItemSpec[];
}

/** The topics of a valid config below the agent's namespace. */
export function opcuaTopics(config: OpcuaConfig): string[] {
  const prefix = config.prefix ?? config.name;
  return config.items.map((item) => `${prefix}/${item.name}`);
}

/** The policy a valid section asks for, its default filled in. */
export function securityPolicyOf(config: OpcuaConfig): SecurityPolicy {
  if (config.security.policy !== undefined) return config.security.policy as SecurityPolicy;
  return config.security.mode === 'None' ? 'None' : DEFAULT_SECURED_POLICY;
}

/** The settings of a valid section; topics under `agentName`. */
export function resolveOpcuaSettings(config: OpcuaConfig, agentName: string): OpcuaSettings {
  const ms = (text: string) => parseDuration(text, { milliseconds: true }) ?? 0;
  const topics = opcuaTopics(config);
  return {
    sourceName: config.name,
    endpoint: config.endpoint,
    securityMode: config.security.mode,
    securityPolicy: securityPolicyOf(config),
    serverCertificateFile: config.security.serverCertificate,
    localAddress: config.localAddress,
    publishingIntervalMs: ms(config.publishingInterval),
    reconnectBaseMs: ms(config.reconnectBase),
    reconnectCapMs: ms(config.reconnectCap),
    items: config.items.map((item, index) => ({
      name: item.name,
      topic: `${agentName}/${topics[index] ?? ''}`,
      nodeId: item.nodeId,
      samplingIntervalMs: ms(item.samplingInterval ?? config.samplingInterval),
      queueSize: item.queueSize ?? config.queueSize,
      unit: item.unit,
    })),
  };
}

/**
 * The agent's configuration (`agent.yaml`): one schema, validated once at start and at every
 * reload, every problem reported with its key path, unknown keys refused, then frozen. The role is
 * not configured: it comes from the enrolled certificate, and a section for the other role is an
 * error, so an OT host can never be configured to act as an IT one.
 */
import { dirname, resolve } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { readConfigFile } from '../../relay/protocol/config-file.ts';
import { collectSchemaIssues, dedupeIssues, deepFreeze } from '../../relay/protocol/config-schema.ts';
import { ConfigError, type ConfigIssue } from '../../relay/protocol/errors.ts';
import { DAY_MS } from '../../pki/lifetimes.ts';
import { checkSemantics } from './config-semantics.ts';
import { duration, size } from './config-values.ts';
import { MIN_REPLAY_WINDOW } from '../points/resume-cursor.ts';
import { checkSourceConfigs, type SourceConfig } from '../ot/sources/registry.ts';
import {
  checkEntrances,
  checkServices,
  entranceAddress,
  EntranceSchema,
  parseHostPort,
  ServiceSchema,
  streamsPerPeer,
  type TunnelEntranceSettings,
  type TunnelService,
} from '../tunnels/tunnel-config.ts';
import { ItApiSchema, resolveItApi, type ItApiConfig } from '../it/api/api-config.ts';
import { RecentSinkSchema, resolveRecentSink, type RecentSinkConfig } from '../it/sinks/recent-config.ts';
import { MqttSinkSection, resolveMqttSink, type MqttSinkConfig } from '../it/sinks/mqtt/config.ts';
import { resolveWrites, WritesConfigSchema, type WriteSettings } from '../ot/writes/config.ts';

const Duration = (fallback: string) => Type.String({ minLength: 2, maxLength: 16, default: fallback });
const Size = (fallback: string) =>
  Type.Union([Type.String({ maxLength: 24 }), Type.Integer({ minimum: 0 })], { default: fallback });
const Name = Type.String({ minLength: 1, maxLength: 63 });

function section<T extends Parameters<typeof Type.Object>[0]>(fields: T) {
  return Type.Object(fields, { additionalProperties: false, default: {} });
}

const JsonLinesSink = Type.Object(
  { name: Name, type: Type.Literal('jsonl'), dir: Type.String({ minLength: 1 }) },
  { additionalProperties: false },
);

const Consume = Type.Object(
  {
    /** A name for logs, status and metrics; default `<from>`. */
    name: Type.Optional(Name),
    /** The OT agent to consume from. */
    from: Name,
    /** Topics wanted, within what policy grants; default everything of that agent, `<from>/#`. */
    filter: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    /** The sink (by name) that receives the points; its cursor is this consumer's. */
    sink: Name,
    /** Points one replay round carries at most. */
    replayWindow: Type.Integer({ minimum: MIN_REPLAY_WINDOW, maximum: 1_048_576, default: 65_536 }),
  },
  { additionalProperties: false },
);

export const AgentConfigSchema = Type.Object(
  {
    /** The credential directory `dmz-agent enroll --dir` made. */
    credentials: Type.String({ minLength: 1 }),
    /** Where the agent keeps its state: the OT log, its lock and status. Created 0700. */
    state: Type.String({ minLength: 1 }),
    relay: Type.Object(
      {
        /** The relay's agent port: `wss://relay.example:8443/v1/agent`. */
        url: Type.String({ minLength: 1, maxLength: 512 }),
        connectTimeout: Duration('10s'),
        /** Reconnect waits: exponential from `reconnectBase`, capped at `reconnectCap`, full jitter. */
        reconnectBase: Duration('500ms'),
        reconnectCap: Duration('30s'),
      },
      { additionalProperties: false },
    ),
    /** `/healthz` and `/metrics` on loopback; off unless configured. */
    admin: Type.Optional(
      Type.Object(
        {
          host: Type.String({ minLength: 1, maxLength: 255, default: '127.0.0.1' }),
          port: Type.Integer({ minimum: 0, maximum: 65535 }),
        },
        { additionalProperties: false },
      ),
    ),
    log: section({
      level: Type.Union(
        ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((level) => Type.Literal(level)),
        { default: 'info' },
      ),
    }),
    ot: Type.Optional(
      Type.Object(
        {
          /** The durable stream log: every point is here before it leaves. */
          log: section({ maxBytes: Size('1GiB'), maxAge: Duration('7d'), segmentBytes: Size('64MiB') }),
          /** Where points come from; none on a host that only carries tunnels (`services`). */
          sources: Type.Array(Type.Unknown(), { maxItems: 256, default: [] }),
          /** Tunnel services (agents/tunnels/): the only place a target host:port is named. */
          services: Type.Array(ServiceSchema, { maxItems: 256, default: [] }),
          /** Points IT may write (agents/ot/writes/config.ts); none unless listed. */
          writes: WritesConfigSchema,
        },
        { additionalProperties: false },
      ),
    ),
    it: Type.Optional(
      Type.Object(
        {
          sinks: Type.Array(Type.Union([JsonLinesSink, RecentSinkSchema, MqttSinkSection]), {
            maxItems: 64,
            default: [],
          }),
          consume: Type.Array(Consume, { maxItems: 256, default: [] }),
          /** Tunnel entrances: a local listen address to `<ot-agent>/<service>` (agents/tunnels/). */
          tunnels: Type.Array(EntranceSchema, { maxItems: 256, default: [] }),
          /** The local HTTP API and dashboard (agents/it/api), off unless configured. */
          api: Type.Optional(ItApiSchema),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

type RawConfig = Static<typeof AgentConfigSchema>;

export interface AgentConfig {
  readonly credentials: string;
  readonly state: string;
  readonly relay: {
    readonly url: string;
    readonly connectTimeoutMs: number;
    readonly reconnectBaseMs: number;
    readonly reconnectCapMs: number;
  };
  readonly admin: { readonly host: string; readonly port: number } | undefined;
  readonly log: { readonly level: string };
  readonly ot:
    | {
        readonly log: { readonly maxBytes: number; readonly maxAgeMs: number; readonly segmentBytes: number };
        readonly sources: readonly SourceConfig[];
        readonly writes: WriteSettings;
        readonly services: readonly TunnelService[];
      }
    | undefined;
  readonly it:
    | {
        readonly sinks: readonly (
          | { readonly name: string; readonly type: 'jsonl'; readonly dir: string }
          | RecentSinkConfig
          | MqttSinkConfig
        )[];
        readonly consume: readonly {
          readonly name: string;
          readonly from: string;
          readonly filter: string;
          readonly sink: string;
          readonly replayWindow: number;
        }[];
        readonly api: ItApiConfig | undefined;
        readonly tunnels: readonly TunnelEntranceSettings[];
      }
    | undefined;
}

/**
 * Validates a parsed configuration. `baseDir` resolves relative paths (the config file's
 * directory). Returns the frozen config, or throws ConfigError listing every problem.
 */
export function validateAgentConfig(input: unknown, baseDir: string, source = 'configuration'): AgentConfig {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ConfigError([{ path: '', message: 'must be a mapping of keys to values' }], source);
  }
  const raw = Value.Default(AgentConfigSchema, structuredClone(input)) as RawConfig;
  const issues = bySinkType(collectSchemaIssues(AgentConfigSchema, raw), raw);
  let config: AgentConfig | undefined;
  try {
    config = resolveConfig(raw, baseDir, issues);
    issues.push(...checkSemantics(config));
  } catch (error) {
    // The shape is too broken to go on; the schema's issues say why.
    if (issues.length === 0) throw error;
  }
  if (config === undefined || issues.length > 0) throw new ConfigError(dedupeIssues(issues), source);
  return deepFreeze(config);
}

function resolveConfig(raw: RawConfig, baseDir: string, issues: ConfigIssue[]): AgentConfig {
  const path = (value: string) => resolve(baseDir, value);
  return {
    credentials: path(raw.credentials),
    state: path(raw.state),
    relay: {
      url: raw.relay.url,
      connectTimeoutMs: duration(issues, '/relay/connectTimeout', raw.relay.connectTimeout, 100, 300_000),
      reconnectBaseMs: duration(issues, '/relay/reconnectBase', raw.relay.reconnectBase, 10, 60_000),
      reconnectCapMs: duration(issues, '/relay/reconnectCap', raw.relay.reconnectCap, 100, 3_600_000),
    },
    admin: raw.admin,
    log: raw.log,
    ot: raw.ot === undefined ? undefined : resolveOt(issues, raw.ot, baseDir),
    it:
      raw.it === undefined
        ? undefined
        : {
            sinks: raw.it.sinks.map((sink, index) =>
              sink.type === 'recent'
                ? resolveRecentSink(sink, `/it/sinks/${index}`, path(raw.state), path, issues)
                : sink.type === 'mqtt'
                  ? resolveMqttSink(sink, `/it/sinks/${index}`, path, issues)
                  : { ...sink, dir: path(sink.dir) },
            ),
            consume: raw.it.consume.map((consume) => ({
              name: consume.name ?? consume.from,
              from: consume.from,
              filter: consume.filter ?? `${consume.from}/#`,
              sink: consume.sink,
              replayWindow: consume.replayWindow,
            })),
            api:
              raw.it.api === undefined
                ? undefined
                : resolveItApi(
                    raw.it.api,
                    raw.it.sinks.filter((sink) => sink.type === 'recent').map((sink) => sink.name),
                    path,
                    issues,
                  ),
            tunnels: resolveEntrances(issues, raw.it.tunnels),
          },
  };
}

/** Each sink type's schema: a sink's problems are told against its own type's, by key. */
const SINK_SCHEMAS = { jsonl: JsonLinesSink, recent: RecentSinkSchema, mqtt: MqttSinkSection } as const;

/**
 * The schema reports a bad sink as "Expected union value" (it matches no member of the union):
 * those issues are replaced by the sink's own type's, which name the key that is wrong.
 */
function bySinkType(issues: ConfigIssue[], raw: RawConfig): ConfigIssue[] {
  const sinks: unknown = raw.it?.sinks;
  if (!Array.isArray(sinks)) return issues;
  const kept = issues.filter((issue) => !/^\/it\/sinks\/\d+(\/|$)/.test(issue.path));
  sinks.forEach((sink: unknown, index) => {
    const at = `/it/sinks/${index}`;
    const type = typeof sink === 'object' && sink !== null ? (sink as { type?: unknown }).type : undefined;
    const schema = Object.hasOwn(SINK_SCHEMAS, String(type))
      ? SINK_SCHEMAS[type as keyof typeof SINK_SCHEMAS]
      : undefined;
    if (schema === undefined) {
      kept.push({ path: `${at}/type`, message: `must be one of: ${Object.keys(SINK_SCHEMAS).join(', ')}` });
    } else {
      kept.push(...collectSchemaIssues(schema, sink, at));
    }
  });
  return kept;
}

/** Reads and validates a YAML configuration file (refused if another user could change it). */
export async function loadAgentConfig(file: string): Promise<AgentConfig> {
  return validateAgentConfig(await readConfigFile(file), dirname(resolve(file)), file);
}

/** The role of the enrolled certificate decides which section may be there, and one must be. */
export function checkConfigRole(config: AgentConfig, role: 'ot' | 'it', source: string): void {
  const other = role === 'ot' ? 'it' : 'ot';
  const issues: ConfigIssue[] = [];
  if (config[other] !== undefined) {
    issues.push({
      path: `/${other}`,
      message: `this agent's certificate is for role ${role}; remove this section`,
    });
  }
  if (config[role] === undefined) {
    issues.push({ path: `/${role}`, message: `required: this agent's certificate is for role ${role}` });
  }
  if (issues.length > 0) throw new ConfigError(issues, source);
}

function resolveOt(
  issues: ConfigIssue[],
  ot: NonNullable<RawConfig['ot']>,
  baseDir: string,
): NonNullable<AgentConfig['ot']> {
  // Sources that are not a list (or no ot mapping at all) the schema has reported already.
  const sourceIssues = Array.isArray(ot.sources) ? checkSourceConfigs(ot.sources, '/ot/sources') : [];
  issues.push(...sourceIssues);
  // Writable points are looked up in the sources only once those are known to be valid.
  const sources =
    Array.isArray(ot.sources) && sourceIssues.length === 0 ? (ot.sources as SourceConfig[]) : undefined;
  return {
    log: {
      maxBytes: size(issues, '/ot/log/maxBytes', ot.log.maxBytes),
      maxAgeMs: duration(issues, '/ot/log/maxAge', ot.log.maxAge, 60_000, 3650 * DAY_MS),
      segmentBytes: size(issues, '/ot/log/segmentBytes', ot.log.segmentBytes),
    },
    sources: ot.sources as SourceConfig[],
    writes: resolveWrites(issues, ot.writes, sources, baseDir),
    services: resolveServices(issues, ot.services),
  };
}

/** A stream's connect must fail well inside the entrance's open timeout (30 s, entrance.ts). */
const MAX_CONNECT_TIMEOUT_MS = 20_000;

function resolveServices(
  issues: ConfigIssue[],
  services: NonNullable<RawConfig['ot']>['services'],
): TunnelService[] {
  issues.push(...checkServices(services, '/ot/services'));
  return services.map((service, index) => {
    const at = `/ot/services/${index}`;
    return {
      name: service.name,
      target: parseHostPort(service.target) ?? { host: '', port: 0 },
      allow: service.allow,
      maxStreams: service.maxStreams,
      maxStreamsPerPeer: service.maxStreamsPerPeer ?? streamsPerPeer(service.maxStreams, service.allow),
      idleTimeoutMs: duration(issues, `${at}/idleTimeout`, service.idleTimeout, 1_000, 7 * DAY_MS),
      connectTimeoutMs: duration(
        issues,
        `${at}/connectTimeout`,
        service.connectTimeout,
        100,
        MAX_CONNECT_TIMEOUT_MS,
      ),
      bytesPerSecond:
        service.bytesPerSecond === undefined
          ? undefined
          : size(issues, `${at}/bytesPerSecond`, service.bytesPerSecond),
    };
  });
}

function resolveEntrances(
  issues: ConfigIssue[],
  entrances: NonNullable<RawConfig['it']>['tunnels'],
): TunnelEntranceSettings[] {
  const named = entrances.map((entrance) => ({
    ...entrance,
    name: entrance.name ?? entrance.to.replace('/', '-'),
  }));
  issues.push(...checkEntrances(named, '/it/tunnels'));
  return named.map((entrance) => {
    const [peer = '', service = ''] = entrance.to.split('/');
    return {
      name: entrance.name,
      listen: entranceAddress(entrance.listen) ?? { host: '', port: 0 },
      peer,
      service,
    };
  });
}

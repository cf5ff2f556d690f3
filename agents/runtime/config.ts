/**
 * The agent's configuration (`agent.yaml`): one schema, validated once at start and at every
 * reload, every problem reported with its key path, unknown keys refused, then frozen. The role is
 * not configured: it comes from the enrolled certificate, and a section for the other role is an
 * error, so an OT host can never be configured to act as an IT one.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { parseDocument } from 'yaml';
import { formatByteSize, parseByteSize } from '../../relay/protocol/byte-size.ts';
import { MAX_SEGMENT_BYTES } from '../ot/log/limits.ts';
import { fileError } from '../../relay/protocol/command-line.ts';
import { collectSchemaIssues, dedupeIssues, deepFreeze } from '../../relay/protocol/config-schema.ts';
import { ConfigError, DmzError, type ConfigIssue } from '../../relay/protocol/errors.ts';
import { isAgentName } from '../../relay/protocol/identity.ts';
import { filtersIntersect, isValidFilter, validateFilter } from '../../relay/protocol/topics.ts';
import { formatDuration, parseDuration } from '../../pki/duration.ts';
import { DAY_MS } from '../../pki/lifetimes.ts';
import { MIN_REPLAY_WINDOW } from '../points/resume-cursor.ts';
import { checkSourceConfigs, type SourceConfig } from '../ot/sources/registry.ts';

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
          sources: Type.Array(Type.Unknown(), { minItems: 1, maxItems: 256 }),
        },
        { additionalProperties: false },
      ),
    ),
    it: Type.Optional(
      Type.Object(
        {
          sinks: Type.Array(JsonLinesSink, { minItems: 1, maxItems: 64 }),
          consume: Type.Array(Consume, { minItems: 1, maxItems: 256 }),
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
      }
    | undefined;
  readonly it:
    | {
        readonly sinks: readonly { readonly name: string; readonly type: 'jsonl'; readonly dir: string }[];
        readonly consume: readonly {
          readonly name: string;
          readonly from: string;
          readonly filter: string;
          readonly sink: string;
          readonly replayWindow: number;
        }[];
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
  const issues = collectSchemaIssues(AgentConfigSchema, raw);
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
    ot: raw.ot === undefined ? undefined : resolveOt(issues, raw.ot),
    it:
      raw.it === undefined
        ? undefined
        : {
            sinks: raw.it.sinks.map((sink) => ({ ...sink, dir: path(sink.dir) })),
            consume: raw.it.consume.map((consume) => ({
              name: consume.name ?? consume.from,
              from: consume.from,
              filter: consume.filter ?? `${consume.from}/#`,
              sink: consume.sink,
              replayWindow: consume.replayWindow,
            })),
          },
  };
}

/** Reads and validates a YAML configuration file. */
export async function loadAgentConfig(file: string): Promise<AgentConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    const { message } = fileError('read the configuration file', file, cause);
    throw new DmzError('CONFIG_ERR_UNREADABLE', message, { cause, hint: 'check --config' });
  }
  const document = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (document.errors.length > 0) {
    throw new ConfigError(
      document.errors.map((error) => ({ path: '', message: `YAML: ${error.message}` })),
      file,
    );
  }
  return validateAgentConfig(document.toJS({ maxAliasCount: 100 }), dirname(resolve(file)), file);
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

function resolveOt(issues: ConfigIssue[], ot: NonNullable<RawConfig['ot']>): NonNullable<AgentConfig['ot']> {
  // Sources that are not a list (or no ot mapping at all) the schema has reported already.
  if (Array.isArray(ot.sources)) issues.push(...checkSourceConfigs(ot.sources, '/ot/sources'));
  return {
    log: {
      maxBytes: size(issues, '/ot/log/maxBytes', ot.log.maxBytes),
      maxAgeMs: duration(issues, '/ot/log/maxAge', ot.log.maxAge, 60_000, 3650 * DAY_MS),
      segmentBytes: size(issues, '/ot/log/segmentBytes', ot.log.segmentBytes),
    },
    sources: ot.sources as SourceConfig[],
  };
}

function checkSemantics(config: AgentConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  let url: URL | undefined;
  try {
    url = new URL(config.relay.url);
  } catch {
    url = undefined;
  }
  if (url?.protocol !== 'wss:') {
    issues.push({
      path: '/relay/url',
      message: 'must be a wss:// URL, such as wss://relay.example:8443/v1/agent',
    });
  }
  if (config.relay.reconnectBaseMs > config.relay.reconnectCapMs) {
    issues.push({ path: '/relay/reconnectBase', message: 'must not exceed relay.reconnectCap' });
  }
  if (config.admin !== undefined && !isLoopback(config.admin.host)) {
    issues.push({
      path: '/admin/host',
      message: 'must be a loopback address (127.0.0.0/8, ::1 or localhost)',
    });
  }
  if (config.ot !== undefined && config.ot.log.segmentBytes > MAX_SEGMENT_BYTES) {
    issues.push({
      path: '/ot/log/segmentBytes',
      message: `must be at most ${formatByteSize(MAX_SEGMENT_BYTES)}`,
    });
  }
  if (config.ot !== undefined && config.ot.log.segmentBytes * 4 > config.ot.log.maxBytes) {
    issues.push({ path: '/ot/log/segmentBytes', message: 'must be at most a quarter of ot.log.maxBytes' });
  }
  const sinks = new Set<string>();
  config.it?.sinks.forEach((sink, index) => {
    if (sinks.has(sink.name))
      issues.push({ path: `/it/sinks/${index}/name`, message: 'names another sink too' });
    sinks.add(sink.name);
  });
  const consumers = new Set<string>();
  config.it?.consume.forEach((consume, index) => {
    const at = `/it/consume/${index}`;
    if (!isAgentName(consume.from))
      issues.push({ path: `${at}/from`, message: 'must be an agent name (lower-case DNS label)' });
    try {
      validateFilter(consume.filter);
    } catch (error) {
      issues.push({ path: `${at}/filter`, message: (error as Error).message });
    }
    if (!sinks.has(consume.sink)) issues.push({ path: `${at}/sink`, message: 'names no sink in it.sinks' });
    if (consumers.has(consume.name))
      issues.push({ path: `${at}/name`, message: 'names another consumer too' });
    // Two consumers writing the same streams into one sink would each refuse the other's order.
    const earlier = (config.it?.consume ?? [])
      .slice(0, index)
      .findIndex(
        (other) =>
          other.sink === consume.sink &&
          other.from === consume.from &&
          isValidFilter(other.filter) &&
          isValidFilter(consume.filter) &&
          filtersIntersect(other.filter, consume.filter),
      );
    if (earlier >= 0) {
      issues.push({
        path: `${at}/filter`,
        message: `overlaps /it/consume/${earlier}, which writes the same streams of ${consume.from} into sink ${consume.sink}; give one of them another sink`,
      });
    }
    consumers.add(consume.name);
  });
  return issues;
}

/**
 * What a duration or size that did not parse stands for until the issues are thrown: every
 * comparison with NaN is false, so a check across two keys (reconnectBase <= reconnectCap,
 * segmentBytes <= maxBytes / 4) stays silent rather than blame a key the operator got right.
 */
const NOT_A_VALUE = Number.NaN;

function duration(issues: ConfigIssue[], path: string, text: string, min: number, max: number): number {
  const ms = parseDuration(text, { milliseconds: true });
  if (ms === undefined || ms < min || ms > max) {
    issues.push({
      path,
      message: `must be a duration like 500ms, 10s, 5m, 12h or 7d, from ${formatDuration(min)} to ${formatDuration(max)}`,
    });
    return NOT_A_VALUE;
  }
  return ms;
}

function size(issues: ConfigIssue[], path: string, value: string | number): number {
  const bytes = parseByteSize(value);
  if (bytes === undefined || bytes < 64 * 1024) {
    issues.push({ path, message: 'must be a size like 64MiB or 2GiB (at least 64KiB)' });
    return NOT_A_VALUE;
  }
  return bytes;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

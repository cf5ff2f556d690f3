/**
 * The relay's configuration: one schema, validated once at start (and at every reload), every
 * problem reported with its key path, unknown keys refused, then frozen.
 */
import { isIP } from 'node:net';
import { dirname, resolve } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { readConfigFile } from '../protocol/config-file.ts';
import { collectSchemaIssues, dedupeIssues, deepFreeze } from '../protocol/config-schema.ts';
import { ConfigError, type ConfigIssue } from '../protocol/errors.ts';
import { DEFAULT_PORTS } from '../protocol/default-ports.ts';
import { isAgentName, isTrustDomain } from '../protocol/identity.ts';
import { MAX_FRAME_BYTES, MAX_TOPIC_BYTES } from '../protocol/limits.ts';
import { RoleSchema } from '../protocol/role-schema.ts';
import { filtersIntersect, validateFilter } from '../protocol/topics.ts';
import { formatDuration, parseDuration } from '../../pki/duration.ts';
import {
  AGENT_CERTIFICATE_LIFETIME_BOUNDS,
  CRL_VALIDITY_BOUNDS,
  DEFAULT_AGENT_CERTIFICATE_LIFETIME_MS,
  DEFAULT_CRL_VALIDITY_MS,
} from '../../pki/lifetimes.ts';
import { checkListenerPorts } from './listener-ports.ts';
import { parseNetwork } from './trusted-sources.ts';

const Port = Type.Integer({ minimum: 0, maximum: 65535 });
const Host = Type.String({ minLength: 1, maxLength: 255 });
const Filters = Type.Array(Type.String({ maxLength: MAX_TOPIC_BYTES }), { maxItems: 256, default: [] });

function section<T extends Parameters<typeof Type.Object>[0]>(fields: T) {
  return Type.Object(fields, { additionalProperties: false, default: {} });
}

const PolicyRule = Type.Object(
  {
    /** Exactly one of `agent` (a name) or `role` selects whom the rule is for. */
    agent: Type.Optional(Type.String()),
    role: Type.Optional(RoleSchema),
    /** Topic filters this agent may subscribe to inside its sessions (IT agents). */
    subscribe: Filters,
    /** Topic filters this agent may send requests (commands, writes) to. */
    command: Filters,
    /**
     * `<ot-agent>/<service>` filters of the tunnel services this IT agent may open streams to
     * (`plc-7/modbus`, `plc-7/+`); the OT agent's own config maps a service to its target.
     */
    tunnel: Filters,
    /** Extra topic filters an OT agent may publish to, beyond its own `<name>/...` namespace. */
    publish: Filters,
  },
  { additionalProperties: false },
);

export const RelayConfigSchema = Type.Object(
  {
    trustDomain: Type.String(),
    /** Directory holding the CA, the relay's own certificate and key, and the CRL. */
    state: Type.String({ minLength: 1 }),
    listen: section({
      agents: section({ host: Host, port: Port }),
      admin: section({ host: Host, port: Port }),
      /** Server-only TLS; `auto` listens only while an enrollment token is outstanding. */
      enrollment: section({
        host: Host,
        port: Port,
        mode: Type.Union([Type.Literal('auto'), Type.Literal('on'), Type.Literal('off')], {
          default: 'auto',
        }),
      }),
    }),
    pki: section({
      /** Lifetime of agent certificates (`7d`, `12h`); agents renew at about two thirds of it. */
      agentCertificateLifetime: Type.String({
        default: formatDuration(DEFAULT_AGENT_CERTIFICATE_LIFETIME_MS),
      }),
      /** How long each CRL is valid; the relay reissues it when half has passed. */
      crlValidity: Type.String({ default: formatDuration(DEFAULT_CRL_VALIDITY_MS) }),
      /** File holding the CA key's passphrase, when the key is encrypted. */
      passphraseFile: Type.Optional(Type.String({ minLength: 1 })),
    }),
    tls: section({
      /** Seconds a client may take to finish the TLS handshake; at most 10 s (slowloris). */
      handshakeTimeoutMs: Type.Integer({ minimum: 100, maximum: 10_000, default: 10_000 }),
    }),
    limits: section({
      maxFrameBytes: Type.Integer({ minimum: 1024, maximum: MAX_FRAME_BYTES, default: MAX_FRAME_BYTES }),
      connectionAttemptsPerMinute: Type.Integer({ minimum: 1, default: 120 }),
      messagesPerSecond: Type.Integer({ minimum: 1, default: 50_000 }),
      bytesPerSecond: Type.Integer({ minimum: 1024, default: 64 * 1024 * 1024 }),
      violationsBeforeDisconnect: Type.Integer({ minimum: 1, default: 100 }),
      maxSessionsPerAgent: Type.Integer({ minimum: 1, default: 64 }),
      /**
       * Sessions (offered or open) between one IT agent and one OT agent: a dashboard needs one or
       * two, reconnect overlap a few more. 8 is an eighth of maxSessionsPerAgent, so one IT agent can
       * never lock the others out of an OT agent; never above maxSessionsPerAgent.
       */
      maxSessionsPerPair: Type.Integer({ minimum: 1, default: 8 }),
      /**
       * Offers an OT agent has not answered yet (each ends after sessions.offerTimeoutMs). A healthy
       * agent answers within milliseconds, so 16 is room for a burst of reconnecting consumers, and
       * twice maxSessionsPerPair: one IT agent's offers cannot fill it alone.
       */
      maxPendingOffersPerAgent: Type.Integer({ minimum: 1, default: 16 }),
      maxSubscriptionsPerAgent: Type.Integer({ minimum: 1, default: 256 }),
      maxPendingRequestsPerAgent: Type.Integer({ minimum: 1, default: 256 }),
      /**
       * Tunnel streams open in one session: an HMI or SCADA poller holds a handful of TCP
       * connections to a device, an engineering tool a few more; 32 leaves room for both, and
       * with a window of 1 MiB (protocol/streams.ts) bounds what a session can make the relay hold.
       */
      maxStreamsPerSession: Type.Integer({ minimum: 1, maximum: 1024, default: 32 }),
      /**
       * Tunnel streams one agent is an end of, all its sessions together: twice a session's, so one
       * IT agent cannot take every stream an OT agent may have. Bounds the relay's bulk memory per
       * agent connection to this many windows.
       */
      maxStreamsPerAgent: Type.Integer({ minimum: 1, maximum: 4096, default: 64 }),
      maxQueuedBytesPerConsumer: Type.Integer({ minimum: 64 * 1024, default: 8 * 1024 * 1024 }),
      slowConsumerGraceMs: Type.Integer({ minimum: 100, default: 5_000 }),
      enrollmentsPerMinutePerAddress: Type.Integer({ minimum: 1, default: 10 }),
      enrollmentsPerMinute: Type.Integer({ minimum: 1, default: 120 }),
      /**
       * Agent-port connections being set up at once (TLS handshake, then the WebSocket upgrade).
       * A handshake costs the relay ~2-5 ms of CPU; 64 in flight is a fraction of a second of work,
       * so none nears its timeout, and a reconnect storm waits in the queue below instead of piling
       * onto the CPU at once.
       */
      handshakesInProgress: Type.Integer({ minimum: 1, maximum: 4096, default: 64 }),
      /** Of those, from one source address: a stranger cannot take them all from one host. */
      handshakesInProgressPerAddress: Type.Integer({ minimum: 1, maximum: 4096, default: 8 }),
      /** Connections waiting for a handshake slot; beyond it, refused at once (cheaply, before TLS). */
      handshakeQueue: Type.Integer({ minimum: 0, maximum: 65_536, default: 1024 }),
      /**
       * Source networks with a budget of their own: the OT and IT firewalls' NAT addresses, from
       * which a whole plant's agents reconnect at once after a relay restart.
       */
      trustedSources: Type.Array(
        Type.Object(
          {
            network: Type.String({ maxLength: 64 }),
            connectionAttemptsPerMinute: Type.Integer({ minimum: 1 }),
            handshakesInProgressPerAddress: Type.Integer({ minimum: 1, maximum: 4096 }),
          },
          { additionalProperties: false },
        ),
        { maxItems: 64, default: [] },
      ),
      /**
       * Connections open at once on the enrollment port, overall and per address. Enrollment is
       * rare (one connection per new agent); the bound keeps file descriptors for the agent port.
       */
      enrollmentConnections: Type.Integer({ minimum: 1, maximum: 4096, default: 64 }),
      enrollmentConnectionsPerAddress: Type.Integer({ minimum: 1, maximum: 4096, default: 8 }),
    }),
    sessions: section({
      leaseMs: Type.Integer({ minimum: 1_000, maximum: 3_600_000, default: 30_000 }),
      offerTimeoutMs: Type.Integer({ minimum: 100, maximum: 60_000, default: 10_000 }),
    }),
    log: section({
      level: Type.Union(
        ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((level) => Type.Literal(level)),
        { default: 'info' },
      ),
      /** Audit log destination: a file path, or `-` for standard output. */
      audit: Type.String({ minLength: 1, default: '-' }),
    }),
    policy: Type.Array(PolicyRule, { default: [] }),
  },
  { additionalProperties: false },
);

export type RelayConfig = Readonly<Static<typeof RelayConfigSchema>>;
export type PolicyRule = Static<typeof PolicyRule>;

const DEFAULT_LISTEN = {
  agents: { host: '0.0.0.0', port: DEFAULT_PORTS.agents },
  admin: { host: '127.0.0.1', port: DEFAULT_PORTS.admin },
  enrollment: { host: '0.0.0.0', port: DEFAULT_PORTS.enrollment },
};

/** Bounds on durations an operator may configure (why each: pki/lifetimes.ts). */
const DURATION_BOUNDS = {
  agentCertificateLifetime: AGENT_CERTIFICATE_LIFETIME_BOUNDS,
  crlValidity: CRL_VALIDITY_BOUNDS,
} as const;

/**
 * Validates a parsed configuration object. `baseDir` resolves relative paths (the config file's
 * directory). Returns a deeply frozen config or throws ConfigError listing every problem.
 */
export function validateRelayConfig(input: unknown, baseDir: string, source = 'configuration'): RelayConfig {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ConfigError([{ path: '', message: 'must be a mapping of keys to values' }], source);
  }
  const value = structuredClone(input) as Record<string, unknown>;
  const listen = (value['listen'] ?? {}) as Record<string, Record<string, unknown> | undefined>;
  if (typeof listen === 'object' && !Array.isArray(listen)) {
    for (const [name, defaults] of Object.entries(DEFAULT_LISTEN)) {
      const given = listen[name];
      if (given === undefined || (typeof given === 'object' && !Array.isArray(given))) {
        listen[name] = { ...defaults, ...given };
      }
    }
    value['listen'] = listen;
  }
  const withDefaults = Value.Default(RelayConfigSchema, value);
  const issues: ConfigIssue[] = collectSchemaIssues(RelayConfigSchema, withDefaults);
  const config = withDefaults as Static<typeof RelayConfigSchema>;
  try {
    issues.push(...checkSemantics(config));
  } catch {
    // The shape is too broken for the semantic checks; the schema errors already say why.
  }
  if (issues.length > 0) throw new ConfigError(dedupeIssues(issues), source);
  config.state = resolve(baseDir, config.state);
  if (config.pki.passphraseFile !== undefined)
    config.pki.passphraseFile = resolve(baseDir, config.pki.passphraseFile);
  if (config.log.audit !== '-') config.log.audit = resolve(baseDir, config.log.audit);
  return deepFreeze(config);
}

/** Reads and validates a YAML configuration file (refused if another user could change it). */
export async function loadRelayConfig(path: string): Promise<RelayConfig> {
  return validateRelayConfig(await readConfigFile(path), dirname(resolve(path)), path);
}

function checkSemantics(config: Static<typeof RelayConfigSchema>): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  if (!isTrustDomain(config.trustDomain)) {
    issues.push({
      path: '/trustDomain',
      message: 'must be a lower-case DNS-like name (SPIFFE trust domain)',
    });
  }
  issues.push(...checkListenerPorts(config.listen));
  // The admin listener serves metrics and health without authentication: loopback only.
  const adminHost = config.listen.admin.host;
  if (!(
    adminHost === 'localhost' ||
    adminHost === '::1' ||
    (isIP(adminHost) === 4 && adminHost.startsWith('127.'))
  )) {
    issues.push({
      path: '/listen/admin/host',
      message: 'must be a loopback address (127.0.0.0/8, ::1 or localhost)',
    });
  }
  for (const [key, bounds] of Object.entries(DURATION_BOUNDS) as [
    keyof typeof DURATION_BOUNDS,
    { min: number; max: number },
  ][]) {
    const ms = parseDuration(config.pki[key]);
    if (ms === undefined || ms < bounds.min || ms > bounds.max) {
      issues.push({
        path: `/pki/${key}`,
        message: `must be a duration like 90s, 30m, 12h or 7d, from ${formatDuration(bounds.min)} to ${formatDuration(bounds.max)}`,
      });
    }
  }
  // Each narrower limit within the wider one it divides.
  for (const [narrower, wider] of [
    ['handshakesInProgressPerAddress', 'handshakesInProgress'],
    ['enrollmentConnectionsPerAddress', 'enrollmentConnections'],
    // One IT agent with one OT agent: above the per-agent limit, the pair could hold all of it.
    ['maxSessionsPerPair', 'maxSessionsPerAgent'],
    ['maxStreamsPerSession', 'maxStreamsPerAgent'],
  ] as const) {
    if (config.limits[narrower] > config.limits[wider]) {
      issues.push({ path: `/limits/${narrower}`, message: `must not exceed limits.${wider}` });
    }
  }
  config.limits.trustedSources.forEach((source, index) => {
    if (parseNetwork(source.network) === undefined) {
      issues.push({
        path: `/limits/trustedSources/${index}/network`,
        message: 'must be an address/prefix network, such as 192.0.2.10/32 or 2001:db8:7::/48',
      });
    }
  });
  if (config.limits.bytesPerSecond < config.limits.maxFrameBytes) {
    issues.push({
      path: '/limits/bytesPerSecond',
      message: 'must be at least limits.maxFrameBytes, or no full frame could pass',
    });
  }
  config.policy.forEach((rule, index) => {
    const at = `/policy/${index}`;
    if ((rule.agent === undefined) === (rule.role === undefined)) {
      issues.push({ path: at, message: 'must name exactly one of `agent` or `role`' });
    }
    if (rule.agent !== undefined && !isAgentName(rule.agent)) {
      issues.push({ path: `${at}/agent`, message: 'must be an agent name (lower-case DNS label)' });
    }
    for (const key of ['subscribe', 'command', 'tunnel', 'publish'] as const) {
      rule[key].forEach((filter, position) => {
        try {
          validateFilter(filter);
        } catch (error) {
          issues.push({ path: `${at}/${key}/${position}`, message: (error as Error).message });
          return;
        }
        // A stream's target is `<ot-agent>/<service>`, two levels: a grant that matches no such
        // name (`press-7`, `press-7/modbus/x`) would be accepted and never admit anything.
        if (key === 'tunnel' && !filtersIntersect(filter, '+/+')) {
          issues.push({
            path: `${at}/tunnel/${position}`,
            message: 'must be <ot-agent>/<service>, such as press-7/modbus or press-7/+',
          });
        }
      });
    }
  });
  return issues;
}

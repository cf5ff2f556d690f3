/**
 * The tunnel sections of agent.yaml: an OT agent's services (`ot.services`, the only place a
 * target host and port is ever named) and an IT agent's entrances (`it.tunnels`, a local listen
 * address mapped to `<ot-agent>/<service>`). The schemas join the agent's one schema (runtime/
 * config.ts, which also turns durations and sizes into numbers); the checks here are the ones
 * only tunnels have.
 */
import { isIP } from 'node:net';
import { Type } from '@sinclair/typebox';
import type { ConfigIssue } from '../../relay/protocol/errors.ts';
import { isAgentName } from '../../relay/protocol/identity.ts';
import { isServiceName, SERVICE_NAME_PATTERN } from '../../relay/protocol/streams.ts';

/** Streams one service serves at once unless configured: a few clients of one device. */
export const DEFAULT_SERVICE_STREAMS = 16;

const Address = Type.String({ minLength: 3, maxLength: 262 });

export const ServiceSchema = Type.Object(
  {
    name: Type.String({ pattern: SERVICE_NAME_PATTERN }),
    /** `host:port` on the OT network (`[v6]:port` for IPv6). */
    target: Address,
    /** IT agents this service admits, whatever the relay grants; default: whom the relay grants. */
    allow: Type.Optional(Type.Array(Type.String({ maxLength: 63 }), { minItems: 1, maxItems: 256 })),
    maxStreams: Type.Integer({ minimum: 1, maximum: 1024, default: DEFAULT_SERVICE_STREAMS }),
    /** What one IT agent may hold of them (at most maxStreams); default: a fair share (streamsPerPeer). */
    maxStreamsPerPeer: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024 })),
    /** A stream with no byte either way for this long is closed. */
    idleTimeout: Type.String({ minLength: 2, maxLength: 16, default: '5m' }),
    /** How long the target may take to accept a connection. */
    connectTimeout: Type.String({ minLength: 2, maxLength: 16, default: '5s' }),
    /** Bytes per second through this service, both directions and all its streams together. */
    bytesPerSecond: Type.Optional(Type.Union([Type.String({ maxLength: 24 }), Type.Integer({ minimum: 0 })])),
  },
  { additionalProperties: false },
);

export const EntranceSchema = Type.Object(
  {
    /** For logs, status and metrics; default `<to>` with `-` for `/`. */
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    /** `host:port` to listen on; a bare port listens on 127.0.0.1 (loopback by default). */
    listen: Type.Union([Type.String({ minLength: 1, maxLength: 262 }), Type.Integer({ minimum: 0 })]),
    /** `<ot-agent>/<service>`. */
    to: Type.String({ minLength: 3, maxLength: 128 }),
  },
  { additionalProperties: false },
);

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export interface TunnelService {
  readonly name: string;
  readonly target: HostPort;
  readonly allow: readonly string[] | undefined;
  readonly maxStreams: number;
  /** Streams one IT agent (the session's peer) may hold of this service at once. */
  readonly maxStreamsPerPeer: number;
  readonly idleTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly bytesPerSecond: number | undefined;
}

export interface TunnelEntranceSettings {
  readonly name: string;
  readonly listen: HostPort;
  /** The OT agent, and its service. */
  readonly peer: string;
  readonly service: string;
}

const LOOPBACK_HOST = '127.0.0.1';

/** `host:port`, `[v6]:port`, or (`defaultHost` given) a bare port; undefined when it is none. */
export function parseHostPort(value: string | number, defaultHost?: string): HostPort | undefined {
  const text = String(value);
  let host: string | undefined;
  let port: string;
  const bracketed = /^\[([^\]]+)\]:(\d+)$/.exec(text);
  if (bracketed !== null) {
    host = bracketed[1];
    port = bracketed[2] as string;
    if (isIP(host ?? '') !== 6) return undefined;
  } else if (/^\d+$/.test(text)) {
    host = defaultHost;
    port = text;
  } else {
    const colon = text.lastIndexOf(':');
    if (colon <= 0) return undefined;
    host = text.slice(0, colon);
    port = text.slice(colon + 1);
    if (host.includes(':') || !/^[A-Za-z0-9.-]{1,253}$/.test(host) || !/^\d+$/.test(port)) return undefined;
  }
  const number = Number(port);
  if (host === undefined || !Number.isInteger(number) || number > 65535) return undefined;
  return { host, port: number };
}

/**
 * What one IT agent may hold of a service's streams unless `maxStreamsPerPeer` says: an equal share
 * of `maxStreams` among the agents its `allow` list names (at least one stream each). So however
 * many streams one of them holds (a SCADA package opening a connection per poll group), each other
 * listed agent still finds its share free (the engineer's tool), as the entrances to one OT agent
 * keep theirs of a session (entrance.ts). A list of one agent, or no list, leaves the whole
 * `maxStreams` to each: the exit cannot know whom the relay grants, so a service without a list
 * names its bound per agent itself if several agents share it.
 */
export function streamsPerPeer(maxStreams: number, allow: readonly string[] | undefined): number {
  const agents = new Set(allow).size;
  return agents === 0 ? maxStreams : Math.max(1, Math.floor(maxStreams / agents));
}

/** The listen address of an entrance, loopback unless a host is named. */
export function entranceAddress(value: string | number): HostPort | undefined {
  return parseHostPort(value, LOOPBACK_HOST);
}

/** Issues of `ot.services` the schema cannot see: targets, names twice, allowlist names, bounds. */
export function checkServices(
  services: readonly {
    readonly name: string;
    readonly target: string;
    readonly allow?: readonly string[];
    readonly maxStreams: number;
    readonly maxStreamsPerPeer?: number;
  }[],
  at: string,
): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const names = new Set<string>();
  services.forEach((service, index) => {
    const path = `${at}/${index}`;
    if (names.has(service.name)) issues.push({ path: `${path}/name`, message: 'names another service too' });
    names.add(service.name);
    const target = parseHostPort(service.target);
    if (target === undefined || target.port === 0) {
      issues.push({ path: `${path}/target`, message: 'must be host:port (or [v6]:port), port 1-65535' });
    }
    service.allow?.forEach((name, position) => {
      if (!isAgentName(name))
        issues.push({
          path: `${path}/allow/${position}`,
          message: 'must be an agent name (lower-case DNS label)',
        });
    });
    const { maxStreams, maxStreamsPerPeer: perPeer } = service;
    // Bounds the schema refused already (not integers) are not compared again.
    if (
      perPeer !== undefined &&
      Number.isInteger(perPeer) &&
      Number.isInteger(maxStreams) &&
      perPeer > maxStreams
    )
      issues.push({
        path: `${path}/maxStreamsPerPeer`,
        message: `must be at most maxStreams (${maxStreams})`,
      });
  });
  return issues;
}

/** Issues of `it.tunnels`: listen addresses, `to`, names and addresses used twice. */
export function checkEntrances(
  entrances: readonly { readonly name: string; readonly listen: string | number; readonly to: string }[],
  at: string,
): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const names = new Set<string>();
  const addresses = new Set<string>();
  entrances.forEach((entrance, index) => {
    const path = `${at}/${index}`;
    if (names.has(entrance.name)) issues.push({ path: `${path}/name`, message: 'names another tunnel too' });
    names.add(entrance.name);
    const listen = entranceAddress(entrance.listen);
    if (listen === undefined) {
      issues.push({ path: `${path}/listen`, message: 'must be a port, host:port or [v6]:port' });
    } else if (listen.port !== 0) {
      const address = `${listen.host}:${listen.port}`;
      if (addresses.has(address))
        issues.push({ path: `${path}/listen`, message: 'another tunnel listens there' });
      addresses.add(address);
    }
    const [peer, service, ...rest] = entrance.to.split('/');
    if (
      peer === undefined ||
      !isAgentName(peer) ||
      service === undefined ||
      !isServiceName(service) ||
      rest.length > 0
    ) {
      issues.push({ path: `${path}/to`, message: 'must be <ot-agent>/<service>, such as plc-7/modbus' });
    }
  });
  return issues;
}

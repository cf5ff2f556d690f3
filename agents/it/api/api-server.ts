/**
 * The IT agent's HTTP API and dashboard: its own Fastify listener (loopback by default; config.ts
 * refuses an address off loopback without TLS and users), reading the recent-values store. A
 * request is handled in a fixed order: Host check, authentication (who: auth.ts), the route's
 * TypeBox schemas (unknown query keys refused, not dropped), the caller's role against the
 * route's, then the handler. Every refusal is `{code, message}` (api-errors.ts);
 * /api/v1/openapi.json is built from the same table.
 */
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { Value } from '@sinclair/typebox/value';
import { fastify, type FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import { fileError } from '../../../relay/protocol/command-line.ts';
import { DmzError } from '../../../relay/protocol/errors.ts';
import { refuseOpenPermissions } from '../../../relay/protocol/file-permissions.ts';
import { MIN_TLS_VERSION } from '../../../relay/protocol/limits.ts';
import type { AgentStatus } from '../../runtime/status.ts';
import type { RecentSink } from '../sinks/recent-sink.ts';
import type { WriteClient } from '../write-client.ts';
import { AuditedWrites } from '../write-audit.ts';
import type { ItApiConfig, ItApiUser } from './api-config.ts';
import { apiErrorStatus, sendApiError } from './api-errors.ts';
import {
  ANONYMOUS,
  createAuthGate,
  loadAuthenticator,
  type ApiAuthenticator,
  type ApiCaller,
} from './auth.ts';
import { DASHBOARD_CSP, loadDashboardFiles } from './dashboard-files.ts';
import { topicTable } from './entry-bodies.ts';
import { buildOpenApiDocument } from './openapi.ts';
import { API_HEADERS } from './response-headers.ts';
import { forbidden, mayUse } from './roles.ts';
import { API_ROUTES, type ApiContext } from './routes.ts';
import { StreamSlots } from './stream-slots.ts';
import { MAX_BODY_BYTES } from './schemas.ts';

/** The routes served without credentials: the dashboard's page and files, which hold no data. */
const PUBLIC_ROUTES: ReadonlySet<string> = new Set(['/', '/dashboard/:name']);

/** Who each request in progress comes from, as the onRequest hook found. */
const callers = new WeakMap<object, ApiCaller>();

/** The request's caller; a request the hook let through without one is a bug, refused as such. */
function callerOf(request: object): ApiCaller {
  const caller = callers.get(request);
  if (caller === undefined) throw new Error('a route ran without its caller checked');
  return caller;
}

export interface ItApiOptions {
  readonly config: ItApiConfig;
  readonly store: RecentSink;
  readonly status: () => AgentStatus;
  /** The agent's write client; without it POST /api/v1/writes refuses every topic. */
  readonly writes: Pick<WriteClient, 'write'> | undefined;
  /** The agent's state directory: the write audit is `api/audit.jsonl` in it (write-audit.ts). */
  readonly state: string;
  readonly logger: Logger;
  /** The product version, for the OpenAPI document. */
  readonly version: string;
  /** The files it.api names, read already (loadItApiFiles); read here when not given. */
  readonly files?: ItApiFiles;
}

/** What the API takes from the files it.api names. */
export interface ItApiFiles {
  readonly authenticator: ApiAuthenticator | undefined;
  readonly tls: Awaited<ReturnType<typeof readTls>> | undefined;
}

/**
 * Reads every file it.api names (each user's token or password hash, the TLS certificate and key)
 * and refuses one that is missing or open to others, naming its key. The agent reads them before
 * it connects anywhere (agent.ts): such a file stops it at start, not once it has sessions open.
 */
export async function loadItApiFiles(config: ItApiConfig): Promise<ItApiFiles> {
  return {
    authenticator: config.users === undefined ? undefined : await loadAuthenticator(config.users),
    tls: config.tls === undefined ? undefined : await readTls(config.tls),
  };
}

export interface RunningItApi {
  /** `http(s)://host:port/`: the dashboard. */
  readonly url: string;
  readonly port: number;
  /**
   * Takes `users` (a SIGHUP's it.api.users) from the next request on, or rejects and keeps the
   * users it has (a file it cannot read). Users on or off takes a restart: it changes what the
   * listener answers without credentials.
   */
  reloadUsers(users: readonly ItApiUser[]): Promise<void>;
  close(): Promise<void>;
}

export async function startItApi(options: ItApiOptions): Promise<RunningItApi> {
  const { config } = options;
  const { authenticator, tls } = options.files ?? (await loadItApiFiles(config));
  const authGate = authenticator === undefined ? undefined : createAuthGate(authenticator);
  // A page whose name an attacker rebinds to this address (DNS rebinding) reaches a plain-HTTP
  // listener as if it were the page's own server; only the name it asks for gives it away. Over
  // TLS, the browser refuses the listener's certificate for that name; without it, the listener is
  // on loopback (config.ts), where only addresses and localhost name it.
  const checkHost = config.tls === undefined || authGate === undefined;
  const files = await loadDashboardFiles();
  const app = fastify({
    // The agent's log gets what matters (a 500's cause, below), not a line per request.
    logger: false,
    bodyLimit: MAX_BODY_BYTES,
    // Live streams never go idle: close() must cut them, not wait for them.
    forceCloseConnections: true,
    // A path the router cannot decode (`%ZZ`) is refused before any hook: in the API's own words.
    frameworkErrors: (error, _request, reply) => {
      sendApiError(reply.headers(API_HEADERS), error);
    },
    ...(tls === undefined ? {} : { https: tls }),
  });
  // JSON only: Fastify would take text/plain as a string, which no endpoint wants.
  app.removeContentTypeParser('text/plain');
  const logger = options.logger.child({ part: 'api' });
  app.setErrorHandler((error, request, reply) => sendApiError(reply, error, logger, request.url));
  app.setNotFoundHandler((_request, reply) =>
    sendApiError(
      reply,
      new DmzError('AGENT_ERR_API_NOT_FOUND', 'no such endpoint: see /api/v1/openapi.json'),
    ),
  );
  app.addHook('onRequest', async (request, reply) => {
    void reply.headers(API_HEADERS);
    if (checkHost && !isAddressHost(request.headers.host)) {
      return sendApiError(
        reply,
        new DmzError('AGENT_ERR_API_HOST', 'ask for this API by its address or localhost'),
      );
    }
    // By the route the router matched, never by the URL's text: the router decodes `/%61pi/` to
    // `/api/`, so a test of the raw URL would let an encoded path past. Unknown paths need
    // credentials too: only what is listed here is open.
    if (PUBLIC_ROUTES.has(request.routeOptions.url ?? '')) return;
    void reply.header('cache-control', 'no-store');
    if (authGate === undefined) {
      callers.set(request, ANONYMOUS);
      return;
    }
    const verdict = await authGate.check(request.ip, request.headers.authorization);
    if (verdict.allowed) {
      callers.set(request, verdict.caller);
      return;
    }
    if (verdict.retryAfterMs !== undefined) {
      return sendApiError(
        reply.header('retry-after', String(Math.ceil(verdict.retryAfterMs / 1000))),
        new DmzError('AGENT_ERR_API_RATE_LIMITED', 'too many failed attempts: try again later'),
      );
    }
    return sendApiError(
      reply.header(
        'www-authenticate',
        authGate.authenticator.challenge(request.headers['x-requested-with'] === 'XMLHttpRequest'),
      ),
      new DmzError('AGENT_ERR_API_UNAUTHORIZED', 'credentials missing or wrong'),
    );
  });

  const writes = await AuditedWrites.open({ state: options.state, client: options.writes, logger });
  app.addHook('onClose', () => writes.close());
  const context: ApiContext = {
    store: options.store,
    tables: {
      units: topicTable(config.units.map(({ filter, unit }) => ({ filter, value: unit }))),
      writable: topicTable(config.writable.map(({ filter, type }) => ({ filter, value: type }))),
    },
    writes,
    status: options.status,
    streams: new StreamSlots(config.maxStreamsPerUser),
  };
  for (const route of API_ROUTES) {
    app.route({
      method: route.method,
      url: route.url,
      schema: {
        ...(route.querystring === undefined ? {} : { querystring: route.querystring }),
        ...(route.body === undefined ? {} : { body: route.body }),
      },
      validatorCompiler: ({ schema, httpPart }) =>
        httpPart === 'body' ? bodyValidator(schema as TSchema) : queryValidator(schema as TSchema),
      // After validation, as a policy check comes after the parse: a refusal can say what was asked.
      preHandler: async (request) => {
        const caller = callerOf(request);
        if (mayUse(caller.role, route.role)) return;
        await route.onForbidden?.(context, request, caller);
        throw new DmzError('AGENT_ERR_API_FORBIDDEN', forbidden(caller));
      },
      handler: (request, reply) => route.handler(context, request, reply, callerOf(request)),
    });
  }
  const describe = () =>
    buildOpenApiDocument(API_ROUTES, {
      version: options.version,
      schemes: authGate?.authenticator.schemes ?? [],
      statusOf: apiErrorStatus,
    });
  let openapi = describe();
  app.get('/api/v1/openapi.json', () => openapi);
  app.get('/', (_request, reply) => sendFile(reply, files.get('index.html')));
  app.get('/dashboard/:name', (request, reply) =>
    sendFile(reply, files.get((request.params as { name: string }).name)),
  );

  const { host, port } = config.listen;
  try {
    await app.listen({ host, port });
  } catch (cause) {
    const reason =
      (cause as NodeJS.ErrnoException).code === 'EADDRINUSE' ? 'the port is in use' : String(cause);
    throw new DmzError(
      'AGENT_ERR_LISTEN',
      `the API cannot listen on ${host}:${port} (it.api.listen): ${reason}`,
      {
        cause,
        hint: `stop what holds it (ss -ltnp 'sport = :${port}') or choose another it.api.listen.port`,
      },
    );
  }
  const address = app.server.address();
  const bound = typeof address === 'object' && address !== null ? address.port : port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `${config.tls === undefined ? 'http' : 'https'}://${shownHost}:${bound}/`,
    port: bound,
    async reloadUsers(users) {
      if (authGate === undefined)
        throw new DmzError(
          'CONFIG_ERR_INVALID',
          'it.api.users added to an API without users: restart the agent',
        );
      const authenticator = await loadAuthenticator(users);
      authGate.replace(authenticator);
      openapi = describe();
      // A stream opened before stays open only if its credentials still name the same user:
      // removed, or given another password or token, it is cut (its reconnect must sign in again).
      await Promise.all(
        context.streams.open.map(async (stream) => {
          const now = await authenticator.identify(stream.authorization);
          if (now === undefined || now.user !== stream.caller.user) stream.cut();
        }),
      );
    },
    close: () => app.close(),
  };

  function sendFile(reply: FastifyReply, file: { type: string; body: Buffer } | undefined) {
    if (file === undefined) {
      return sendApiError(reply, new DmzError('AGENT_ERR_API_NOT_FOUND', 'no such dashboard file'));
    }
    return reply
      .header('content-security-policy', DASHBOARD_CSP)
      .header('cache-control', 'no-cache')
      .type(file.type)
      .send(file.body);
  }
}

async function readTls(
  tls: NonNullable<ItApiConfig['tls']>,
): Promise<{ cert: Buffer; key: Buffer; minVersion: 'TLSv1.2' | 'TLSv1.3' }> {
  const read = async (file: string, key: string) => {
    try {
      return await readFile(file);
    } catch (cause) {
      throw fileError(`read ${key}`, file, cause, `check ${key}`);
    }
  };
  const cert = await read(tls.cert, 'it.api.tls.cert');
  const key = await read(tls.key, 'it.api.tls.key');
  // The key is the listener's identity: a key others can read is a key others hold.
  refuseOpenPermissions(tls.key, { code: 'AGENT_ERR_API_SECRET' });
  return { cert, key, minVersion: MIN_TLS_VERSION };
}

/** A Host header naming an IP address or localhost (with or without a port). */
export function isAddressHost(host: string | undefined): boolean {
  // RFC 9110 section 7.2: uri-host [":" port], an IPv6 literal in brackets; nothing after either.
  const name = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::\d{1,5})?$/.exec(host ?? '');
  if (name === null) return false;
  const ipv6 = name[1];
  if (ipv6 !== undefined) return isIP(ipv6) === 6;
  return name[2] === 'localhost' || isIP(name[2] as string) === 4;
}

/**
 * A JSON body as it came: JSON has its own types, and a value "95" (text) must not reach a point
 * as the number 95, which Ajv's coercion (on for query strings) would make of it.
 */
function bodyValidator(schema: TSchema) {
  const check = TypeCompiler.Compile(schema);
  return (data: unknown) => {
    if (check.Check(data)) return { value: data };
    const first = check.Errors(data).First();
    const at = first === undefined || first.path === '' ? 'body' : `body${first.path}`;
    return { error: new DmzError('AGENT_ERR_API_BAD_REQUEST', `${at}: ${first?.message ?? 'invalid'}`) };
  };
}

/** A query string: text converted to the schema's numbers and booleans, defaults filled in. */
function queryValidator(schema: TSchema) {
  const check = TypeCompiler.Compile(schema);
  return (data: unknown) => {
    const value = Value.Default(schema, Value.Convert(schema, structuredClone(data)));
    if (check.Check(value)) return { value };
    const first = check.Errors(value).First();
    const at =
      first === undefined || first.path === ''
        ? 'querystring'
        : `querystring${first.path.replaceAll('/', '.')}`;
    return { error: new DmzError('AGENT_ERR_API_BAD_REQUEST', `${at}: ${first?.message ?? 'invalid'}`) };
  };
}

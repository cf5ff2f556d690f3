/**
 * The API's OpenAPI 3.1 document, built from the route table (routes.ts) and the TypeBox schemas
 * Fastify validates with: OpenAPI 3.1 schema objects are JSON Schema 2020-12, which TypeBox's
 * output fits. Query schemas become one parameter per property.
 */
import type { TSchema } from '@sinclair/typebox';
import { ERROR_MESSAGES, type ErrorCode } from '../../../relay/protocol/errors.ts';
import type { ApiRoute } from './routes.ts';
import { ErrorBody } from './schemas.ts';

const ERROR_STATUS_TEXT: Readonly<Record<number, string>> = {
  400: 'Bad request',
  401: 'Credentials missing or wrong',
  404: 'Not found',
  410: 'Cursor expired',
  413: 'Body too large',
  415: 'Body not JSON',
  403: 'Forbidden',
  503: 'Busy',
};

export interface OpenApiOptions {
  readonly version: string;
  /** The schemes the users' credentials take; none when the API has no users. */
  readonly schemes: readonly ('bearer' | 'basic')[];
  /** The HTTP status each error code is answered with (api-errors.ts). */
  readonly statusOf: (code: ErrorCode) => number;
}

export function buildOpenApiDocument(
  routes: readonly ApiRoute[],
  options: OpenApiOptions,
): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const path = route.url.endsWith('/*') ? `${route.url.slice(0, -2)}/{topic}` : route.url;
    const methods = (paths[path] ??= {});
    methods[route.method.toLowerCase()] = operation(route, options);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'dmz-agent IT API',
      version: options.version,
      description:
        "An IT agent's local API: current values, history and a live stream of the points it consumes through the relay. Errors are {code, message} with a stable code.",
    },
    paths,
    components: {
      schemas: { Error: plain(ErrorBody) },
      ...(options.schemes.length === 0
        ? {}
        : {
            securitySchemes: Object.fromEntries(
              options.schemes.map((scheme) => [scheme, { type: 'http', scheme }]),
            ),
          }),
    },
    // Any one of the schemes (OpenAPI 3.1 section 4.8.30: the list's entries are alternatives).
    ...(options.schemes.length === 0
      ? {}
      : { security: options.schemes.map((scheme) => ({ [scheme]: [] })) }),
  };
}

function operation(route: ApiRoute, options: OpenApiOptions): Record<string, unknown> {
  const parameters: Record<string, unknown>[] = [];
  if (route.url.endsWith('/*')) {
    parameters.push({
      name: 'topic',
      in: 'path',
      required: true,
      description: 'The topic, its levels separated by / (not encoded)',
      schema: { type: 'string' },
    });
  }
  const query = route.querystring as
    (TSchema & { properties?: Record<string, TSchema>; required?: string[] }) | undefined;
  for (const [name, schema] of Object.entries(query?.properties ?? {})) {
    parameters.push({
      name,
      in: 'query',
      required: query?.required?.includes(name) === true && !('default' in schema),
      schema: plain(schema),
    });
  }
  const responses: Record<string, unknown> = {};
  if ('mediaType' in route.response) {
    responses['200'] = {
      description: route.response.description,
      content: { [route.response.mediaType]: {} },
    };
  } else {
    responses['200'] = {
      description: 'OK',
      content: { 'application/json': { schema: plain(route.response) } },
    };
  }
  for (const [status, outcome] of Object.entries(route.outcomes ?? {})) {
    responses[status] = {
      description: outcome.description,
      content: { 'application/json': { schema: plain(outcome.schema) } },
    };
  }
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of route.errors) {
    const status = options.statusOf(code);
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  for (const [status, codes] of [...byStatus].sort(([a], [b]) => a - b)) {
    responses[String(status)] = {
      description: `${ERROR_STATUS_TEXT[status] ?? 'Error'}: ${codes.map((code) => `${code} (${ERROR_MESSAGES[code]})`).join('; ')}`,
      content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
    };
  }
  return {
    operationId: route.operationId,
    summary: route.summary,
    description: `Needs role ${route.role}${route.role === 'read' ? ' (or write)' : ''} when the API has users.`,
    'x-dmz-role': route.role,
    ...(parameters.length === 0 ? {} : { parameters }),
    ...(route.body === undefined
      ? {}
      : { requestBody: { required: true, content: { 'application/json': { schema: plain(route.body) } } } }),
    responses,
  };
}

/** The schema as JSON (TypeBox marks its objects with symbols, which JSON leaves out). */
function plain(schema: TSchema): Record<string, unknown> {
  return JSON.parse(JSON.stringify(schema)) as Record<string, unknown>;
}

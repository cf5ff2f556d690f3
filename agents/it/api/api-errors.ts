/**
 * How the API answers a refusal: always JSON `{code, message}`, with a stable code from the one
 * catalog and the HTTP status that code stands for. Fastify's own errors (a body that is not JSON,
 * too large, a query that fails its schema) are mapped onto the same codes, so a client never has
 * to parse two kinds of error. Internal detail never reaches the client.
 */
import type { FastifyError, FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import { DmzError, ERROR_MESSAGES, type ErrorCode } from '../../../relay/protocol/errors.ts';

const HTTP_STATUS: Partial<Record<ErrorCode, number>> = {
  AGENT_ERR_API_BAD_REQUEST: 400,
  AGENT_ERR_API_BAD_JSON: 400,
  AGENT_ERR_API_BAD_CURSOR: 400,
  AGENT_ERR_API_BAD_FILTER: 400,
  AGENT_ERR_API_UNAUTHORIZED: 401,
  AGENT_ERR_API_FORBIDDEN: 403,
  AGENT_ERR_WRITE_READ_ONLY: 403,
  AGENT_ERR_API_NOT_FOUND: 404,
  AGENT_ERR_API_UNKNOWN_TOPIC: 404,
  AGENT_ERR_API_CURSOR_EXPIRED: 410,
  AGENT_ERR_API_BODY_TOO_LARGE: 413,
  AGENT_ERR_API_MEDIA_TYPE: 415,
  AGENT_ERR_API_HOST: 421,
  AGENT_ERR_API_RATE_LIMITED: 429,
  AGENT_ERR_API_USER_STREAMS: 429,
  AGENT_ERR_API_TOO_MANY_STREAMS: 503,
};

/** Fastify's codes for a request it refused before any handler ran. */
const FASTIFY_CODES: Readonly<Record<string, ErrorCode>> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'AGENT_ERR_API_BAD_JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'AGENT_ERR_API_BAD_JSON',
  FST_ERR_CTP_BODY_TOO_LARGE: 'AGENT_ERR_API_BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'AGENT_ERR_API_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'AGENT_ERR_API_BAD_REQUEST',
  FST_ERR_BAD_URL: 'AGENT_ERR_API_BAD_REQUEST',
};

export interface ApiErrorBody {
  readonly code: ErrorCode;
  readonly message: string;
}

/** The HTTP status an API error code is answered with. */
export function apiErrorStatus(code: ErrorCode): number {
  return HTTP_STATUS[code] ?? 500;
}

/** The status and body an error is answered with. */
export function describeApiError(error: unknown): { status: number; body: ApiErrorBody } {
  if (error instanceof DmzError) {
    const status = HTTP_STATUS[error.code];
    if (status !== undefined) return { status, body: { code: error.code, message: error.message } };
  }
  const fastifyError = error as Partial<FastifyError>;
  if (fastifyError.validation !== undefined) {
    // Ajv's words name the field and the rule ("querystring/limit must be <= 10000"): safe to show.
    return { status: 400, body: { code: 'AGENT_ERR_API_BAD_REQUEST', message: fastifyError.message ?? '' } };
  }
  const mapped = fastifyError.code === undefined ? undefined : FASTIFY_CODES[fastifyError.code];
  if (mapped !== undefined) {
    return { status: HTTP_STATUS[mapped] ?? 400, body: { code: mapped, message: ERROR_MESSAGES[mapped] } };
  }
  return {
    status: 500,
    body: { code: 'AGENT_ERR_API_INTERNAL', message: ERROR_MESSAGES.AGENT_ERR_API_INTERNAL },
  };
}

export function sendApiError(
  reply: FastifyReply,
  error: unknown,
  logger?: Logger,
  url?: string,
): FastifyReply {
  const { status, body } = describeApiError(error);
  if (status === 500) logger?.error({ err: error, url }, 'API request failed');
  return reply.code(status).type('application/json; charset=utf-8').send(body);
}

/**
 * The API's endpoints, as one table: each route's method, path, the role it needs, schemas, the
 * error codes it can answer with, and its handler. api-server.ts registers them with Fastify
 * (which validates by the schemas, then checks the caller's role) and openapi.ts describes the
 * same table, so the document is the server.
 */
import type { Static, TSchema } from '@sinclair/typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { DmzError, type ErrorCode } from '../../../relay/protocol/errors.ts';
import { isValidFilter, isValidTopic } from '../../../relay/protocol/topics.ts';
import type { AgentStatus } from '../../runtime/status.ts';
import type { RecentSink } from '../sinks/recent-sink.ts';
import type { AuditedWrites } from '../write-audit.ts';
import type { ApiRole } from './api-config.ts';
import type { ApiCaller } from './auth.ts';
import { forbidden } from './roles.ts';
import { formatCursor, parseCursor } from './cursor.ts';
import { historyEntryBody, topicValueBody, type TopicTables } from './entry-bodies.ts';
import { streamEntries } from './event-stream.ts';
import type { LiveStream, StreamSlots } from './stream-slots.ts';
import {
  HistoryQuery,
  HistoryResponse,
  PointResponse,
  PointsQuery,
  PointsResponse,
  ReadBody,
  StatusResponse,
  StreamQuery,
  WriteBody,
  WriteResponse,
  type TopicValueBody,
} from './schemas.ts';

export interface ApiContext {
  readonly store: RecentSink;
  readonly tables: TopicTables;
  /** The agent's writes, each audited with the user who asked (agents/it/write-audit.ts). */
  readonly writes: AuditedWrites;
  readonly status: () => AgentStatus;
  /** Live streams open now, by user; a reload of the users checks each again. */
  readonly streams: StreamSlots;
}

export interface ApiRoute {
  readonly method: 'GET' | 'POST';
  /** Fastify's path syntax; `*` is the rest of the path. */
  readonly url: string;
  readonly operationId: string;
  readonly summary: string;
  /** The role a caller needs: `read` for what only reads, `write` for what changes the plant. */
  readonly role: ApiRole;
  readonly querystring?: TSchema;
  readonly body?: TSchema;
  /** The 200 answer's schema, or its media type when it is not JSON. */
  readonly response: TSchema | { readonly mediaType: string; readonly description: string };
  readonly errors: readonly ErrorCode[];
  /** Answers besides 200 and the errors, by status (a write refused or failed at the OT side). */
  readonly outcomes?: Readonly<Record<number, { readonly description: string; readonly schema: TSchema }>>;
  handler(context: ApiContext, request: FastifyRequest, reply: FastifyReply, caller: ApiCaller): unknown;
  /** What a refusal by role records (the write route audits who tried), before it is answered. */
  onForbidden?(context: ApiContext, request: FastifyRequest, caller: ApiCaller): Promise<void>;
}

const COMMON_ERRORS: readonly ErrorCode[] = ['AGENT_ERR_API_UNAUTHORIZED', 'AGENT_ERR_API_RATE_LIMITED'];

export const API_ROUTES: readonly ApiRoute[] = [
  {
    method: 'GET',
    url: '/api/v1/points',
    operationId: 'listPoints',
    role: 'read',
    summary: 'The current value of every topic under a filter, by topic, with the cursor of this moment',
    querystring: PointsQuery,
    response: PointsResponse,
    errors: [...COMMON_ERRORS, 'AGENT_ERR_API_BAD_REQUEST', 'AGENT_ERR_API_BAD_FILTER'],
    handler: ({ store, tables }, request) => {
      const { filter } = request.query as { filter: string };
      checkFilter(filter);
      const points = store
        .summaries(filter)
        .map((summary) => topicValueBody(summary, tables))
        .filter((point) => point !== undefined);
      return { cursor: formatCursor(store, store.latestId), points };
    },
  },
  {
    method: 'GET',
    url: '/api/v1/points/*',
    operationId: 'getPoint',
    role: 'read',
    summary: 'The current value of one topic (the path after /points/ is the topic)',
    response: PointResponse,
    errors: [...COMMON_ERRORS, 'AGENT_ERR_API_BAD_FILTER', 'AGENT_ERR_API_UNKNOWN_TOPIC'],
    handler: ({ store, tables }, request) => {
      const topic = (request.params as { '*': string })['*'];
      return { cursor: formatCursor(store, store.latestId), point: readTopics(store, tables, [topic])[0] };
    },
  },
  {
    method: 'POST',
    url: '/api/v1/points/read',
    operationId: 'readPoints',
    role: 'read',
    summary: 'The current values of the topics named in the body, in that order',
    body: ReadBody,
    response: PointsResponse,
    errors: [
      ...COMMON_ERRORS,
      'AGENT_ERR_API_BAD_REQUEST',
      'AGENT_ERR_API_BAD_JSON',
      'AGENT_ERR_API_BODY_TOO_LARGE',
      'AGENT_ERR_API_MEDIA_TYPE',
      'AGENT_ERR_API_BAD_FILTER',
      'AGENT_ERR_API_UNKNOWN_TOPIC',
    ],
    handler: ({ store, tables }, request) => {
      const { topics } = request.body as { topics: string[] };
      return { cursor: formatCursor(store, store.latestId), points: readTopics(store, tables, topics) };
    },
  },
  {
    method: 'GET',
    url: '/api/v1/history',
    operationId: 'getHistory',
    role: 'read',
    summary: 'Entries held after a cursor (or from a source time), oldest first, one page at a time',
    querystring: HistoryQuery,
    response: HistoryResponse,
    errors: [
      ...COMMON_ERRORS,
      'AGENT_ERR_API_BAD_REQUEST',
      'AGENT_ERR_API_BAD_FILTER',
      'AGENT_ERR_API_BAD_CURSOR',
      'AGENT_ERR_API_CURSOR_EXPIRED',
    ],
    handler: ({ store }, request) => {
      const query = request.query as { filter: string; since?: string; from?: string; limit: number };
      checkFilter(query.filter);
      if (query.since !== undefined && query.from !== undefined) {
        throw new DmzError('AGENT_ERR_API_BAD_REQUEST', 'give since or from, not both');
      }
      const afterId = query.since === undefined ? 0 : parseCursor(store, query.since);
      const fromMs = query.from === undefined ? undefined : Date.parse(query.from);
      const page = store.history({
        filter: query.filter,
        afterId,
        ...(fromMs === undefined ? {} : { fromMs }),
        limit: query.limit,
      });
      const last = page.entries.at(-1);
      return {
        entries: page.entries.map((held) => historyEntryBody(store, held)),
        cursor: last === undefined ? (query.since ?? null) : formatCursor(store, last.id),
        more: page.more,
        truncated: page.truncated,
      };
    },
  },
  {
    method: 'GET',
    url: '/api/v1/stream',
    operationId: 'streamEntries',
    role: 'read',
    summary:
      'Server-sent events: `point` and `gap` events with the cursor as id, live, resumed after Last-Event-ID or since=',
    querystring: StreamQuery,
    response: { mediaType: 'text/event-stream', description: 'events `hello`, `point`, `gap`, `truncated`' },
    errors: [
      ...COMMON_ERRORS,
      'AGENT_ERR_API_BAD_REQUEST',
      'AGENT_ERR_API_BAD_FILTER',
      'AGENT_ERR_API_BAD_CURSOR',
      'AGENT_ERR_API_CURSOR_EXPIRED',
      'AGENT_ERR_API_USER_STREAMS',
      'AGENT_ERR_API_TOO_MANY_STREAMS',
    ],
    handler: async ({ store, streams }, request, reply, caller) => {
      const query = request.query as { filter: string; since?: string };
      checkFilter(query.filter);
      // The browser's reconnect sends the last id it saw: that wins over the URL it first used.
      const lastEventId = request.headers['last-event-id'];
      const resume = typeof lastEventId === 'string' && lastEventId !== '' ? lastEventId : query.since;
      const afterId = resume === undefined || resume === '' ? undefined : parseCursor(store, resume);
      // Authorised once, when it opens, but it may outlive that user: a reload checks it again.
      const live: LiveStream = {
        authorization: request.headers.authorization,
        caller,
        cut: () => reply.raw.destroy(),
      };
      streams.take(live);
      reply.hijack();
      try {
        await streamEntries(reply.raw, store, { filter: query.filter, afterId });
      } finally {
        streams.release(live);
      }
    },
  },
  {
    method: 'POST',
    url: '/api/v1/writes',
    operationId: 'writePoint',
    role: 'write',
    summary:
      "Writes a value to a point through the relay, signed with this agent's key; answered with the OT agent's outcome",
    body: WriteBody,
    response: WriteResponse,
    outcomes: {
      422: {
        description: "Refused by a check (the OT agent's, or the relay's policy): nothing was written",
        schema: WriteResponse,
      },
      502: {
        description: 'Not done: the device refused or did not answer, or the OT agent is not connected',
        schema: WriteResponse,
      },
      504: {
        description: 'No answer in time: it may have been done, and will never be done later',
        schema: WriteResponse,
      },
    },
    errors: [
      ...COMMON_ERRORS,
      'AGENT_ERR_API_BAD_REQUEST',
      'AGENT_ERR_API_BAD_JSON',
      'AGENT_ERR_API_BODY_TOO_LARGE',
      'AGENT_ERR_API_MEDIA_TYPE',
      'AGENT_ERR_API_BAD_FILTER',
      'AGENT_ERR_API_FORBIDDEN',
      'AGENT_ERR_WRITE_READ_ONLY',
    ],
    onForbidden: ({ writes }, request, caller) => {
      const { topic, value } = request.body as Static<typeof WriteBody>;
      return writes.refuse(caller.user, { topic, value }, 'AGENT_ERR_API_FORBIDDEN', forbidden(caller));
    },
    handler: async ({ tables, writes }, request, reply, caller) => {
      const { topic, value, timeoutMs } = request.body as Static<typeof WriteBody>;
      if (!isValidTopic(topic)) {
        throw new DmzError('AGENT_ERR_API_BAD_FILTER', 'not a topic: levels of [A-Za-z0-9_.-], no wildcards');
      }
      if (!writes.available || tables.writable.of(topic) === undefined) {
        const message = `this API offers no write to ${topic} (it.api.writable)`;
        await writes.refuse(caller.user, { topic, value }, 'AGENT_ERR_WRITE_READ_ONLY', message);
        throw new DmzError('AGENT_ERR_WRITE_READ_ONLY', message);
      }
      // An OT agent's points live under its own name: the first level names the agent to ask.
      const agent = topic.slice(0, topic.indexOf('/'));
      const result = await writes.write(caller.user, {
        agent,
        topic,
        value,
        ...(timeoutMs === undefined ? {} : { timeoutMs }),
      });
      const status =
        result.status === 'done'
          ? 200
          : result.status === 'refused'
            ? 422
            : result.code === 'RELAY_ERR_TIMEOUT'
              ? 504
              : 502;
      return reply.code(status).send({
        status: result.status,
        ...(result.code === undefined ? {} : { code: result.code }),
        message: result.message,
      });
    },
  },
  {
    method: 'GET',
    url: '/api/v1/status',
    operationId: 'getStatus',
    role: 'read',
    summary: "The agent's state: relay link, consumers (each OT agent's session), certificate, store",
    response: StatusResponse,
    errors: COMMON_ERRORS,
    handler: ({ store, status, writes }, _request, _reply, caller) => ({
      agent: status(),
      store: {
        name: store.name,
        cursor: formatCursor(store, store.latestId),
        topics: store.topicCount,
      },
      writes: writes.available,
      caller: { user: caller.user ?? null, role: caller.role },
    }),
  },
];

function checkFilter(filter: string): void {
  if (!isValidFilter(filter)) {
    throw new DmzError(
      'AGENT_ERR_API_BAD_FILTER',
      'not a topic filter: levels of [A-Za-z0-9_.-], + or # (last)',
    );
  }
}

function readTopics(store: RecentSink, tables: TopicTables, topics: readonly string[]): TopicValueBody[] {
  return topics.map((topic) => {
    if (!isValidTopic(topic)) {
      throw new DmzError('AGENT_ERR_API_BAD_FILTER', 'not a topic: levels of [A-Za-z0-9_.-], no wildcards');
    }
    const summary = store.summary(topic);
    const body = summary === undefined ? undefined : topicValueBody(summary, tables);
    // The topic is named back only once it is known to be well-formed (it passed the grammar).
    if (body === undefined)
      throw new DmzError('AGENT_ERR_API_UNKNOWN_TOPIC', `no value is held for ${topic}`);
    return body;
  });
}

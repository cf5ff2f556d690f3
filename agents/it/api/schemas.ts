/**
 * The API's shapes, defined once as TypeBox schemas: Fastify validates requests with them (and
 * serialises responses by them), and openapi.ts publishes the very same objects, so the document
 * cannot drift from what the server checks.
 */
import { FormatRegistry, Type, type Static } from '@sinclair/typebox';
import { MAX_REQUEST_TIMEOUT_MS, MAX_TOPIC_BYTES } from '../../../relay/protocol/limits.ts';

/** Entries one history page returns at most: ~150 KiB of JSON at the default, a few MiB at most. */
export const DEFAULT_HISTORY_LIMIT = 1_000;
export const MAX_HISTORY_LIMIT = 10_000;
/** Topics one batch read names at most: an HMI screen's worth. */
export const MAX_READ_TOPICS = 256;
/** A request body at most: a batch read of MAX_READ_TOPICS topics of 256 bytes, JSON-quoted, fits. */
export const MAX_BODY_BYTES = 128 * 1024;

export const Cursor = Type.String({
  pattern: '^[0-9]{1,9}-[0-9]{1,15}$',
  description: 'A position in the store, `<epoch>-<id>`: resume the history or the stream after it.',
  examples: ['1-18342'],
});

export const Filter = Type.String({
  minLength: 1,
  maxLength: MAX_TOPIC_BYTES,
  default: '#',
  description: 'An MQTT-style topic filter: `+` one level, `#` the rest (last level only).',
});

const WriteType = Type.Union([Type.Literal('number'), Type.Literal('boolean'), Type.Literal('string')], {
  description: 'The point takes writes of this type from this API (it.api.writable)',
});
/** RFC 3339 date-times (`from=`), as TypeBox's validator checks them: it knows no format by itself. */
const RFC_3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i;
if (!FormatRegistry.Has('date-time')) {
  FormatRegistry.Set('date-time', (value) => RFC_3339.test(value) && !Number.isNaN(Date.parse(value)));
}

const Quality = Type.Union([Type.Literal('good'), Type.Literal('uncertain'), Type.Literal('bad')]);
const Value = Type.Union([Type.Number(), Type.Boolean(), Type.String(), Type.Array(Type.Number())]);
const Time = Type.String({ format: 'date-time', description: 'ISO 8601, UTC, milliseconds' });

const pointFields = {
  topic: Type.String(),
  seq: Type.Integer({ minimum: 1, description: "The point's sequence number in its stream" }),
  value: Value,
  quality: Quality,
  reason: Type.Optional(Type.String({ description: 'Why the quality is not good' })),
  sourceTime: Time,
};

/** A topic as the current-values endpoints show it. */
export const TopicValue = Type.Object({
  ...pointFields,
  unit: Type.Optional(Type.String()),
  writable: Type.Optional(WriteType),
  gaps: Type.Integer({ minimum: 0, description: 'Gap records received: points the OT log no longer had' }),
});

export const HistoryEntry = Type.Union([
  Type.Object({ cursor: Cursor, kind: Type.Literal('point'), ...pointFields }),
  Type.Object({
    cursor: Cursor,
    kind: Type.Literal('gap'),
    topic: Type.String(),
    from: Type.Integer({ minimum: 1 }),
    to: Type.Integer({ minimum: 1 }),
    reason: Type.String(),
  }),
  Type.Object({
    cursor: Cursor,
    kind: Type.Literal('reset', {
      description: "The OT log was re-created: this topic's entries from `from` on name other points now",
    }),
    topic: Type.String(),
    from: Type.Integer({ minimum: 1 }),
    held: Type.Integer({ minimum: 0 }),
    reason: Type.String(),
  }),
]);

export const ErrorBody = Type.Object({
  code: Type.String({ description: 'A stable code from the catalog (AGENT_ERR_API_*)' }),
  message: Type.String(),
});

export const PointsQuery = Type.Object({ filter: Filter }, { additionalProperties: false });

export const PointsResponse = Type.Object({
  cursor: Cursor,
  points: Type.Array(TopicValue),
});

export const PointResponse = Type.Object({ cursor: Cursor, point: TopicValue });

export const ReadBody = Type.Object(
  {
    topics: Type.Array(Type.String({ minLength: 1, maxLength: MAX_TOPIC_BYTES }), {
      minItems: 1,
      maxItems: MAX_READ_TOPICS,
    }),
  },
  { additionalProperties: false },
);

export const HistoryQuery = Type.Object(
  {
    filter: Filter,
    since: Type.Optional(Cursor),
    from: Type.Optional(Type.String({ format: 'date-time', description: 'Or: from this source time on' })),
    limit: Type.Integer({ minimum: 1, maximum: MAX_HISTORY_LIMIT, default: DEFAULT_HISTORY_LIMIT }),
  },
  { additionalProperties: false },
);

export const HistoryResponse = Type.Object({
  entries: Type.Array(HistoryEntry),
  cursor: Type.Union([Cursor, Type.Null()], { description: 'Ask again with since=cursor for what follows' }),
  more: Type.Boolean({ description: 'More entries are held after this page' }),
  truncated: Type.Boolean({ description: 'Entries after `since` were evicted before they were read' }),
});

export const StreamQuery = Type.Object(
  {
    filter: Filter,
    since: Type.Optional(
      Type.Union([Cursor, Type.Literal('')], {
        description: 'Resume after this cursor (or send Last-Event-ID)',
      }),
    ),
  },
  { additionalProperties: false },
);

export const StatusResponse = Type.Object({
  agent: Type.Unknown({ description: "The agent's status snapshot, as `dmz-agent status --json` prints it" }),
  store: Type.Object({
    name: Type.String(),
    cursor: Cursor,
    topics: Type.Integer({ minimum: 0 }),
  }),
  writes: Type.Boolean({ description: 'Whether this agent can send writes' }),
  caller: Type.Object(
    {
      user: Type.Union([Type.String(), Type.Null()], {
        description: 'The it.api.users name the credentials are of; null when the API has no users',
      }),
      role: Type.Union([Type.Literal('read'), Type.Literal('write')], {
        description: 'What the caller may do: read, or also write',
      }),
    },
    { description: 'Who asked: the dashboard shows write controls to role write alone' },
  ),
});

export type TopicValueBody = Static<typeof TopicValue>;
export type HistoryEntryBody = Static<typeof HistoryEntry>;

export const WriteBody = Type.Object(
  {
    topic: Type.String({ minLength: 1, maxLength: MAX_TOPIC_BYTES }),
    value: Type.Union([Type.Number(), Type.Boolean(), Type.String({ maxLength: 256 })]),
    timeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_REQUEST_TIMEOUT_MS })),
  },
  { additionalProperties: false },
);

export const WriteResponse = Type.Object({
  status: Type.Union([Type.Literal('done'), Type.Literal('refused'), Type.Literal('failed')]),
  code: Type.Optional(
    Type.String({ description: "The refusal's or failure's catalog code (AGENT_ERR_WRITE_*, RELAY_ERR_*)" }),
  ),
  message: Type.String(),
});

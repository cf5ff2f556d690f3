/**
 * Every frame of wire protocol v1, defined once: a TypeBox schema per frame and direction, from
 * which both the static types and the runtime validators come.
 *
 * On the wire a frame is one binary WebSocket message: one byte of frame kind, then a MessagePack
 * map of the fields. Payloads (`points`, `payload`) are opaque bytes the relay never looks into.
 */
import { FormatRegistry, Type, type Static, type TSchema } from '@sinclair/typebox';
import { isAgentName } from './identity.ts';
import {
  MAX_AGENT_NAME_LENGTH,
  MAX_ERROR_MESSAGE_LENGTH,
  MAX_FRAME_BYTES,
  MAX_PEM_BYTES,
  MAX_POINTS_PER_FRAME,
  MAX_REQUEST_TIMEOUT_MS,
  MAX_RESUME_BYTES,
  MAX_TOPIC_BYTES,
  MAX_U32,
} from './limits.ts';
import { RoleSchema } from './role-schema.ts';
import { MAX_STREAM_CHUNK_BYTES, MAX_STREAM_WINDOW_BYTES, SERVICE_NAME_PATTERN } from './streams.ts';

/** Frame kind byte. Gaps leave room per family. */
export const FRAME_KIND = {
  hello: 0x01,
  welcome: 0x02,
  sessionOpen: 0x10,
  sessionAccept: 0x11,
  sessionClose: 0x12,
  sessionLease: 0x13,
  subscribe: 0x20,
  unsubscribe: 0x21,
  publish: 0x30,
  deliver: 0x31,
  dropped: 0x32,
  request: 0x40,
  response: 0x41,
  ping: 0x50,
  pong: 0x51,
  ack: 0x5e,
  error: 0x5f,
  streamOpen: 0x70,
  streamData: 0x71,
  streamWindow: 0x72,
  streamClose: 0x73,
  renew: 0x80,
  renewed: 0x81,
} as const;

export type FrameType = keyof typeof FRAME_KIND;

const U32 = Type.Integer({ minimum: 0, maximum: MAX_U32 });
const Sequence = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
/**
 * A peer's name in a frame must be what an identity's name can be (identity.ts, a lower-case DNS
 * label), checked by that one function: a name outside the grammar is nobody, and never reaches a
 * lookup, a log line or an error message.
 */
const AGENT_NAME_FORMAT = 'dmz-agent-name';
FormatRegistry.Set(AGENT_NAME_FORMAT, isAgentName);
const AgentName = Type.String({ minLength: 1, maxLength: MAX_AGENT_NAME_LENGTH, format: AGENT_NAME_FORMAT });
const Resume = Type.Uint8Array({ maxByteLength: MAX_RESUME_BYTES });
/** Grammar is checked by topics.ts; the schema only bounds the size before that. */
const Topic = Type.String({ minLength: 1, maxLength: MAX_TOPIC_BYTES });
const Bytes = Type.Uint8Array({ maxByteLength: MAX_FRAME_BYTES });
const Lease = Type.Integer({ minimum: 1, maximum: 24 * 3600 * 1000 });
const Code = Type.String({ pattern: '^[A-Z][A-Z0-9_]{0,63}$' });
const Message = Type.String({ maxLength: MAX_ERROR_MESSAGE_LENGTH });
const Timeout = Type.Integer({ minimum: 1, maximum: MAX_REQUEST_TIMEOUT_MS });
/**
 * The points of a publish or deliver: one opaque byte range (agents/points/batch.ts lays the
 * points out in it) and how many points it holds. The relay validates the envelope only and
 * forwards the range as it came: a frame of 128 points costs it about what a frame of one does.
 */
const PointBatch = Type.Uint8Array({ minByteLength: 1, maxByteLength: MAX_FRAME_BYTES });
const PointCount = Type.Integer({ minimum: 1, maximum: MAX_POINTS_PER_FRAME });
const Pem = Type.String({ minLength: 1, maxLength: MAX_PEM_BYTES });
const RemoteError = Type.Object({ code: Code, message: Message }, { additionalProperties: false });
const Limit = Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER });
/**
 * The relay's limits on one agent that the agent must plan with (relay config `limits`): each
 * optional, so a relay announces what it enforces. Keys this agent does not know are allowed (the
 * only map a newer relay may widen without breaking older agents); the codec still bounds its width.
 */
const AnnouncedLimits = Type.Object(
  {
    /** Frames and bytes the relay takes from this identity per second; beyond, it refuses and then cuts. */
    messagesPerSecond: Type.Optional(Limit),
    bytesPerSecond: Type.Optional(Limit),
    maxSessionsPerAgent: Type.Optional(Limit),
    /** Sessions between one IT agent and one OT agent. */
    maxSessionsPerPair: Type.Optional(Limit),
    maxSubscriptionsPerAgent: Type.Optional(Limit),
    maxPendingRequestsPerAgent: Type.Optional(Limit),
    /** Tunnel streams open at once in one session (the entrances to one OT agent share it). */
    maxStreamsPerSession: Type.Optional(Limit),
  },
  { additionalProperties: true },
);

function frame<T extends Record<string, TSchema>>(fields: T) {
  return Type.Object(fields, { additionalProperties: false });
}

/**
 * Tunnel streams (streams.ts): a stream is numbered by its opener, the IT agent, within a session.
 * `credit` is bytes the receiver lets the sender send on top of what it granted before (a data
 * frame spends at least MIN_STREAM_FRAME_CREDIT of it, streams.ts); `end` on a
 * data frame is the sender's FIN (half-close: the other direction goes on); streamClose is an
 * abort of both directions (RST), with why.
 */
const StreamId = U32;
const ServiceName = Type.String({ pattern: SERVICE_NAME_PATTERN });
const Credit = Type.Integer({ minimum: 1, maximum: MAX_STREAM_WINDOW_BYTES });
const StreamOpen = frame({ session: U32, stream: StreamId, service: ServiceName, window: Credit });
const StreamData = frame({
  session: U32,
  stream: StreamId,
  data: Type.Uint8Array({ maxByteLength: MAX_STREAM_CHUNK_BYTES }),
  end: Type.Optional(Type.Boolean()),
});
const StreamWindow = frame({ session: U32, stream: StreamId, credit: Credit });

const Ping = frame({ nonce: U32 });
const SessionClose = frame({ session: U32, code: Type.Optional(Code), message: Type.Optional(Message) });
const Response = frame({
  session: U32,
  id: U32,
  payload: Type.Optional(Bytes),
  error: Type.Optional(RemoteError),
});
const Request = frame({ session: U32, id: U32, topic: Topic, timeoutMs: Timeout, payload: Bytes });

/** Frames an agent sends to the relay. */
export const TO_RELAY = {
  hello: frame({ software: Type.String({ maxLength: 64 }) }),
  /** IT agent asks for a session with an OT agent, scoped to a topic filter. */
  sessionOpen: frame({ ref: U32, peer: AgentName, filter: Topic }),
  /** OT agent accepts a session the relay offered. */
  sessionAccept: frame({ session: U32 }),
  sessionClose: SessionClose,
  /** `resume` is the consumer's cursor, opaque to the relay, for the OT agent's replay. */
  subscribe: frame({
    ref: U32,
    session: U32,
    filter: Topic,
    resume: Type.Optional(Resume),
  }),
  unsubscribe: frame({ ref: U32, session: U32, filter: Topic }),
  /**
   * Points `seq` .. `seq + count - 1` of the stream `topic`, as one batch; `session` directs a
   * replay to one session.
   */
  publish: frame({
    topic: Topic,
    seq: Sequence,
    count: PointCount,
    points: PointBatch,
    session: Type.Optional(U32),
  }),
  request: Request,
  response: Response,
  ping: Ping,
  pong: Ping,
  /** Certificate renewal over the live mTLS connection: a CSR for a fresh key (PEM). */
  renew: frame({ ref: U32, csr: Pem }),
  /** IT agent opens a stream to a service of the session's OT agent; `window` is its receive credit. */
  streamOpen: StreamOpen,
  streamData: StreamData,
  streamWindow: StreamWindow,
  streamClose: frame({ session: U32, stream: StreamId, code: Code, message: Type.Optional(Message) }),
} as const;

/** Frames the relay sends to an agent. */
export const TO_AGENT = {
  welcome: frame({
    role: RoleSchema,
    name: AgentName,
    leaseMs: Lease,
    pingIntervalMs: Lease,
    maxFrameBytes: Type.Integer({ minimum: 1, maximum: MAX_FRAME_BYTES }),
    /** Absent from relays that did not announce their limits yet. */
    limits: Type.Optional(AnnouncedLimits),
  }),
  /** The relay offers an OT agent a session an IT agent asked for. */
  sessionOpen: frame({ session: U32, peer: AgentName, filter: Topic, leaseMs: Lease }),
  /** The relay tells the IT agent its session is open. */
  sessionAccept: frame({ ref: U32, session: U32, peer: AgentName, filter: Topic, leaseMs: Lease }),
  sessionClose: frame({ session: U32, code: Code, message: Message }),
  sessionLease: frame({ session: U32, leaseMs: Lease }),
  subscribe: frame({
    session: U32,
    filter: Topic,
    resume: Type.Optional(Resume),
  }),
  unsubscribe: frame({ session: U32, filter: Topic }),
  deliver: frame({ session: U32, topic: Topic, seq: Sequence, count: PointCount, points: PointBatch }),
  /** Live points the relay dropped for this consumer because it read too slowly. */
  dropped: frame({ session: U32, points: Type.Integer({ minimum: 1 }) }),
  request: Request,
  response: Response,
  ping: Ping,
  pong: Ping,
  ack: frame({ ref: U32 }),
  /** The renewed certificate (PEM) for the same identity, and the CA that issued it. */
  renewed: frame({ ref: U32, certificate: Pem, ca: Pem }),
  error: frame({
    ref: Type.Optional(U32),
    session: Type.Optional(U32),
    /** The stream a refused stream frame was about (the stream itself is unchanged). */
    stream: Type.Optional(StreamId),
    code: Code,
    message: Message,
  }),
  /** The relay hands the OT agent a stream the IT agent opened (policy checked). */
  streamOpen: StreamOpen,
  streamData: StreamData,
  streamWindow: StreamWindow,
  streamClose: frame({ session: U32, stream: StreamId, code: Code, message: Message }),
} as const;

type FramesOf<Schemas extends Record<string, TSchema>> = {
  [K in keyof Schemas & string]: { readonly type: K } & Static<Schemas[K]>;
}[keyof Schemas & string];

export type ToRelayFrame = FramesOf<typeof TO_RELAY>;
export type ToAgentFrame = FramesOf<typeof TO_AGENT>;
export type Frame = ToRelayFrame | ToAgentFrame;

export type ToRelayFrameOf<T extends ToRelayFrame['type']> = Extract<ToRelayFrame, { type: T }>;
export type ToAgentFrameOf<T extends ToAgentFrame['type']> = Extract<ToAgentFrame, { type: T }>;
export type WelcomeLimits = Static<typeof AnnouncedLimits>;

/**
 * The one frame decoder on the relay's pre-policy path, and its encoder. Decoding runs in a fixed
 * order: size cap, kind, parse, validate. State and policy checks come after, in their owners.
 */
import { Decoder, Encoder } from '@msgpack/msgpack';
import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { DmzError } from './errors.ts';
import { checkNesting } from './msgpack-nesting.ts';
import {
  FRAME_KIND,
  TO_AGENT,
  TO_RELAY,
  type Frame,
  type FrameType,
  type ToAgentFrame,
  type ToRelayFrame,
} from './frames.ts';
import { MAX_FRAME_BYTES } from './limits.ts';
import { quoteField } from './wire-text.ts';

interface CompiledFrame {
  readonly type: FrameType;
  readonly check: TypeCheck<TSchema>;
}

/** Index by kind byte: a 256-entry table, so dispatch is one array read. */
function compileDirection(schemas: Record<string, TSchema>): readonly (CompiledFrame | undefined)[] {
  const table: (CompiledFrame | undefined)[] = new Array<CompiledFrame | undefined>(256).fill(undefined);
  for (const [type, kind] of Object.entries(FRAME_KIND) as [FrameType, number][]) {
    const schema = schemas[type];
    if (schema !== undefined) table[kind] = { type, check: TypeCompiler.Compile(schema) };
  }
  return table;
}

const TO_RELAY_TABLE = compileDirection(TO_RELAY);
const TO_AGENT_TABLE = compileDirection(TO_AGENT);

/** As wide as the widest map: enough to decode a stray array and refuse it by schema, cheaply. */
const MAX_ARRAY_LENGTH = 16;
/**
 * MessagePack limits bound the work a hostile frame can cause before validation: no string longer
 * than any field allows, no map wider than the widest frame, and arrays short (no frame of v2 has
 * one: points travel as one opaque batch).
 */
const decoder = new Decoder({
  maxStrLength: 4096,
  maxBinLength: MAX_FRAME_BYTES,
  maxArrayLength: MAX_ARRAY_LENGTH,
  maxMapLength: 16,
  maxExtLength: 0,
});
const encoder = new Encoder({ ignoreUndefined: true });
/** The deepest any frame goes: a map holding an array (of points) or a map (an error). */
const MAX_FRAME_NESTING = 2;

export type Direction = 'toRelay' | 'toAgent';

export function decodeFrame(data: Uint8Array, direction: 'toRelay', maxBytes?: number): ToRelayFrame;
export function decodeFrame(data: Uint8Array, direction: 'toAgent', maxBytes?: number): ToAgentFrame;
export function decodeFrame(data: Uint8Array, direction: Direction, maxBytes?: number): Frame;
export function decodeFrame(data: Uint8Array, direction: Direction, maxBytes = MAX_FRAME_BYTES): Frame {
  if (data.byteLength > maxBytes) throw new DmzError('RELAY_ERR_FRAME_TOO_LARGE');
  const kind = data[0];
  if (kind === undefined) throw new DmzError('RELAY_ERR_MALFORMED_FRAME', 'empty frame');
  const compiled = (direction === 'toRelay' ? TO_RELAY_TABLE : TO_AGENT_TABLE)[kind];
  if (compiled === undefined) {
    throw new DmzError(
      'RELAY_ERR_UNKNOWN_FRAME',
      `unknown frame kind 0x${kind.toString(16).padStart(2, '0')}`,
    );
  }
  const encoded = data.subarray(1);
  checkNesting(encoded, MAX_FRAME_NESTING);
  let body: unknown;
  try {
    body = decoder.decode(encoded);
  } catch (cause) {
    throw new DmzError('RELAY_ERR_MALFORMED_FRAME', `${compiled.type} frame is not valid MessagePack`, {
      cause,
    });
  }
  if (!compiled.check.Check(body)) {
    const first = compiled.check.Errors(body).First();
    // The path may hold the sender's own map key: quoted, bounded and reduced to printable ASCII.
    const where = first === undefined ? '' : ` at ${quoteField(first.path || '/')}: ${first.message}`;
    throw new DmzError('RELAY_ERR_INVALID_FRAME', `invalid ${compiled.type} frame${where}`);
  }
  // The schema forbids extra keys, so `type` cannot already be there.
  (body as { type: FrameType }).type = compiled.type;
  return body as Frame;
}

/** Encodes a frame; `type` becomes the kind byte, the rest the MessagePack body. */
export function encodeFrame(frame: Frame): Uint8Array {
  const { type, ...fields } = frame;
  const body = encoder.encodeSharedRef(fields);
  const out = new Uint8Array(body.byteLength + 1);
  out[0] = FRAME_KIND[type];
  out.set(body, 1);
  return out;
}

/**
 * The deliver frames of one publish, one per session that wants it, each as two pieces that go on
 * the wire back to back as one message: a head (the kind byte, a 5-entry map header, the session
 * entry, the `topic`/`seq`/`count` entries and the `points` key with its bin header, the part
 * after the session built once: a MessagePack map's entries may come in any order), then the
 * points batch as it came, never decoded, re-encoded or copied: every session shares it.
 */
export function deliveryFrames(fields: {
  topic: string;
  seq: number;
  count: number;
  points: Uint8Array;
}): (session: number) => readonly [head: Uint8Array, points: Uint8Array] {
  let header: Uint8Array | undefined;
  return (session) => {
    header ??= deliverHeader(fields);
    const sessionEntry = encoder.encodeSharedRef({ session }).subarray(1);
    const head = new Uint8Array(2 + sessionEntry.byteLength + header.byteLength);
    head[0] = FRAME_KIND.deliver;
    head[1] = FIXMAP_5;
    head.set(sessionEntry, 2);
    head.set(header, 2 + sessionEntry.byteLength);
    return [head, fields.points];
  };
}

/** `topic`, `seq` and `count` entries, then the `points` key and the header of its bin. */
function deliverHeader(fields: {
  topic: string;
  seq: number;
  count: number;
  points: Uint8Array;
}): Uint8Array {
  const { topic, seq, count } = fields;
  // encode() of a 3-entry map starts with its one-byte header (fixmap, 0x83): the rest are entries.
  const entries = encoder.encode({ topic, seq, count }).subarray(1);
  const key = encoder.encode('points');
  const bin = binHeader(fields.points.byteLength);
  const header = new Uint8Array(entries.byteLength + key.byteLength + bin.byteLength);
  header.set(entries, 0);
  header.set(key, entries.byteLength);
  header.set(bin, entries.byteLength + key.byteLength);
  return header;
}

/** MessagePack bin 8/16/32 (spec "bin format family"): type byte, then the length, big-endian. */
function binHeader(length: number): Uint8Array {
  return length <= 0xff
    ? Uint8Array.of(0xc4, length)
    : length <= 0xffff
      ? Uint8Array.of(0xc5, length >>> 8, length & 0xff)
      : Uint8Array.of(0xc6, length >>> 24, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff);
}

/** MessagePack fixmap header for five entries (spec: 0x80 | n). */
const FIXMAP_5 = 0x85;

/**
 * A streamData frame as two pieces, like a delivery: the head (kind byte, map header, `session`,
 * `stream` and `end` entries, the `data` key and its bin header), then the data as it came, so the
 * relay forwards a tunnel's bytes without copying them into a frame of their own.
 */
export function streamDataFrame(fields: {
  session: number;
  stream: number;
  data: Uint8Array;
  end?: boolean;
}): readonly [head: Uint8Array, data: Uint8Array] {
  const { session, stream, data, end } = fields;
  const entries = encoder.encode(end === undefined ? { session, stream } : { session, stream, end });
  const key = encoder.encode('data');
  const bin = binHeader(data.byteLength);
  const head = new Uint8Array(1 + entries.byteLength + key.byteLength + bin.byteLength);
  head[0] = FRAME_KIND.streamData;
  // The map's one-byte fixmap header counts one entry more: the `data` that follows.
  head[1] = (entries[0] ?? 0) + 1;
  head.set(entries.subarray(1), 2);
  head.set(key, entries.byteLength + 1);
  head.set(bin, entries.byteLength + 1 + key.byteLength);
  return [head, data];
}

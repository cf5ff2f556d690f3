/**
 * A write command on the wire: the payload of a `request` frame, a JWS in compact serialization
 * (RFC 7515 §7.1) whose payload is the command's claims as JSON. Everything the OT agent acts on is
 * inside the signed part: who sends it (`iss`), to whom (`aud`), the point, the value, the deadline
 * and a nonce; the frame's own topic (which the relay routes by) must say the same. The IT agent
 * signs with its Ed25519 key (RFC 8037 EdDSA), `kid` the key's RFC 7638 thumbprint; the header's
 * `typ` (RFC 8725 §3.11, explicit typing) keeps a JWS made for anything else from passing as one.
 * A command for a point that needs no signature may also come unsecured (`alg: none`, RFC 7515
 * Appendix A.5); one for a point that does is refused unless it verifies with a pinned key.
 */
import { randomBytes, type KeyObject } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { CompactSign, compactVerify } from 'jose';
import { DmzError } from '../../../relay/protocol/errors.ts';
import { MAX_TOPIC_BYTES } from '../../../relay/protocol/limits.ts';
import { MAX_STRING_VALUE_BYTES } from '../../points/point.ts';
import type { PinnedKey } from './config.ts';
import { publicKeyObject } from './keys.ts';

export const COMMAND_TYPE = 'dmz-write+jws';
/**
 * A command is a few hundred bytes (claims with a 256-byte string value, a header and a 64-byte
 * signature, base64url): anything past 4 KiB is not one, and is refused before it is parsed.
 */
export const MAX_COMMAND_BYTES = 4096;
/** 128 random bits: two commands never share a nonce by chance. */
const NONCE_BYTES = 16;

const Name = Type.String({ minLength: 1, maxLength: 63 });

const ClaimsSchema = Type.Object(
  {
    /** The IT agent that sends it: must be the session's peer. */
    iss: Name,
    /** The OT agent it is for. */
    aud: Name,
    topic: Type.String({ minLength: 1, maxLength: MAX_TOPIC_BYTES }),
    value: Type.Union([Type.Number(), Type.Boolean(), Type.String({ maxLength: MAX_STRING_VALUE_BYTES })]),
    /** Milliseconds since the Unix epoch after which the command must never be executed. */
    deadline: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
    nonce: Type.String({ minLength: 16, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' }),
  },
  { additionalProperties: false },
);

const HeaderSchema = Type.Object(
  {
    alg: Type.Union([Type.Literal('EdDSA'), Type.Literal('none')]),
    typ: Type.Literal(COMMAND_TYPE),
    kid: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  },
  { additionalProperties: false },
);

export type WriteClaims = Static<typeof ClaimsSchema>;

export interface DecodedCommand {
  readonly claims: WriteClaims;
  /** The key id the header names (unprotected by itself: it only picks the key to verify with). */
  readonly kid: string | undefined;
  /** False for an unsecured command (`alg: none`, no signature). */
  readonly signed: boolean;
  readonly compact: string;
}

/** The key an IT agent signs with. */
export interface SigningKey {
  readonly privateKey: KeyObject;
  /** RFC 7638 thumbprint of its public key. */
  readonly kid: string;
}

export function newNonce(): string {
  return randomBytes(NONCE_BYTES).toString('base64url');
}

/** The signed command, as a request's payload. */
export async function signCommand(claims: WriteClaims, key: SigningKey): Promise<Uint8Array> {
  const jws = await new CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
    .setProtectedHeader({ alg: 'EdDSA', typ: COMMAND_TYPE, kid: key.kid })
    .sign(key.privateKey);
  return new TextEncoder().encode(jws);
}

/**
 * The command in a request's payload, its shape checked (size cap, three segments, header,
 * claims); the signature is verifyCommand's. AGENT_ERR_WRITE_MALFORMED for anything else.
 */
export function decodeCommand(payload: Uint8Array): DecodedCommand {
  if (payload.byteLength > MAX_COMMAND_BYTES) throw malformed(`larger than ${MAX_COMMAND_BYTES} bytes`);
  const compact = Buffer.from(payload).toString('utf8');
  const parts = compact.split('.');
  if (parts.length !== 3) throw malformed('not a JWS in compact serialization');
  const [headerPart = '', claimsPart = '', signaturePart = ''] = parts;
  const header = parseSegment(headerPart, 'header');
  if (!Value.Check(HeaderSchema, header)) throw malformed('its header is not a write command header');
  const claims = parseSegment(claimsPart, 'claims');
  if (!Value.Check(ClaimsSchema, claims)) throw malformed('its claims are not those of a write command');
  const signed = header.alg === 'EdDSA';
  if (signed !== (signaturePart !== '')) throw malformed('its signature does not match its algorithm');
  return { claims, kid: header.kid, signed, compact };
}

/**
 * Verifies a signed command against the keys pinned for its writer: a command without a signature
 * is AGENT_ERR_WRITE_SIGNATURE_MISSING, one whose key id names no pinned key
 * AGENT_ERR_WRITE_KEY_NOT_PINNED, one that does not verify AGENT_ERR_WRITE_SIGNATURE_INVALID.
 */
export async function verifyCommand(command: DecodedCommand, pinned: readonly PinnedKey[]): Promise<void> {
  if (!command.signed) throw new DmzError('AGENT_ERR_WRITE_SIGNATURE_MISSING');
  const candidates = command.kid === undefined ? pinned : pinned.filter((key) => key.kid === command.kid);
  if (candidates.length === 0) throw new DmzError('AGENT_ERR_WRITE_KEY_NOT_PINNED');
  for (const key of candidates) {
    try {
      await compactVerify(command.compact, publicKeyObject(key.jwk), { algorithms: ['EdDSA'] });
      return;
    } catch {
      // Not this key; the next, if any.
    }
  }
  throw new DmzError('AGENT_ERR_WRITE_SIGNATURE_INVALID');
}

function parseSegment(segment: string, what: string): unknown {
  try {
    return JSON.parse(Buffer.from(segment, 'base64url').toString('utf8')) as unknown;
  } catch {
    throw malformed(`its ${what} is not base64url JSON`);
  }
}

function malformed(why: string): DmzError {
  return new DmzError('AGENT_ERR_WRITE_MALFORMED', `the write command is malformed: ${why}`);
}

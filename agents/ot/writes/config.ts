/**
 * The OT agent's `ot.writes` section: which points IT may write, of what type and range, by whom,
 * signed by which pinned key, and whether the local write window must be open. Writes are off by
 * default: a point not listed here is read-only, whatever the relay's policy says. The target of a
 * write (register, coil, node id) is the source point's own definition; this section only names
 * the point by its topic.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { fileError } from '../../../relay/protocol/command-line.ts';
import { DmzError, type ConfigIssue } from '../../../relay/protocol/errors.ts';
import { refuseWritableByOthers } from '../../../relay/protocol/file-permissions.ts';
import { isAgentName } from '../../../relay/protocol/identity.ts';
import { MAX_TOPIC_BYTES } from '../../../relay/protocol/limits.ts';
import { formatDuration, parseDuration } from '../../../pki/duration.ts';
import { MAX_STRING_VALUE_BYTES } from '../../points/point.ts';
import { writeProblem, type SourceConfig } from '../sources/registry.ts';
import type { WriteValue, WriteValueType } from '../sources/source.ts';
import { jwkThumbprint, MAX_KEY_TEXT_BYTES, parsePublicKey, type PublicJwk } from './keys.ts';

/** The longest write window an operator may open: a shift. Longer is a standing hole, not a window. */
export const MAX_WINDOW_LIMIT_MS = 12 * 3600 * 1000;
/** Writable points of one agent: as many as a source has points (modbus/config.ts). */
export const MAX_WRITABLE_POINTS = 10_000;
/** Writers or keys of one point: a handful of HMIs and a MES, with room for key rotation. */
const MAX_WRITERS_PER_POINT = 64;
/** Allowed values of one point: a recipe list, a mode selector. */
const MAX_ALLOWED_VALUES = 256;

const Name = Type.String({ minLength: 1, maxLength: 63 });
const Value = Type.Union([Type.Number(), Type.Boolean(), Type.String({ maxLength: MAX_STRING_VALUE_BYTES })]);

const KeySchema = Type.Object(
  {
    /** The IT agent whose key this is. */
    agent: Name,
    /** Exactly one of: the public key as PEM text, as a JWK, or a file holding either. */
    pem: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_KEY_TEXT_BYTES })),
    jwk: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    file: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
  },
  { additionalProperties: false },
);

const WritablePointSchema = Type.Object(
  {
    /** The source point, by its topic below the agent's name (`line1/setpoint`). */
    point: Type.String({ minLength: 1, maxLength: MAX_TOPIC_BYTES }),
    type: Type.Union([Type.Literal('number'), Type.Literal('boolean'), Type.Literal('string')]),
    /** Numbers: the lowest and highest value allowed, in engineering units. */
    min: Type.Optional(Type.Number()),
    max: Type.Optional(Type.Number()),
    /** The only values allowed (a mode selector, a push button that may only be pressed: [true]). */
    values: Type.Optional(Type.Array(Value, { minItems: 1, maxItems: MAX_ALLOWED_VALUES })),
    /** The IT agents that may write it, by the names in their certificates. */
    writers: Type.Array(Name, { minItems: 1, maxItems: MAX_WRITERS_PER_POINT }),
    /** When given, every write must be signed by a key pinned here for the writer. */
    signedBy: Type.Optional(Type.Array(KeySchema, { minItems: 1, maxItems: MAX_WRITERS_PER_POINT })),
    /** Writes need the local write window open (`dmz-agent writes open`). */
    window: Type.Boolean({ default: false }),
  },
  { additionalProperties: false },
);

export const WritesConfigSchema = Type.Object(
  {
    /** The longest `dmz-agent writes open --for` may open the window for. */
    maxWindow: Type.String({ minLength: 2, maxLength: 16, default: '8h' }),
    points: Type.Array(WritablePointSchema, { maxItems: MAX_WRITABLE_POINTS, default: [] }),
  },
  { additionalProperties: false, default: {} },
);

export type RawWritesConfig = Static<typeof WritesConfigSchema>;

export interface PinnedKey {
  readonly agent: string;
  readonly jwk: PublicJwk;
  /** RFC 7638 thumbprint: the `kid` of the commands it signs. */
  readonly kid: string;
}

export interface WritablePoint {
  /** Below the agent's namespace, as in the config: `line1/setpoint`. */
  readonly point: string;
  readonly type: WriteValueType;
  readonly min: number | undefined;
  readonly max: number | undefined;
  readonly values: readonly WriteValue[] | undefined;
  readonly writers: readonly string[];
  /** Empty: commands need no signature. */
  readonly signedBy: readonly PinnedKey[];
  readonly window: boolean;
}

export interface WriteSettings {
  readonly maxWindowMs: number;
  readonly points: readonly WritablePoint[];
}

/**
 * The section, resolved: key files read (relative to `baseDir`), every problem pushed onto
 * `issues` under `at` (`/ot/writes`). `sources` must be valid (their own checks passed).
 */
export function resolveWrites(
  issues: ConfigIssue[],
  raw: RawWritesConfig,
  sources: readonly SourceConfig[] | undefined,
  baseDir: string,
  at = '/ot/writes',
): WriteSettings {
  const maxWindowMs = parseDuration(raw.maxWindow, { milliseconds: true });
  if (maxWindowMs === undefined || maxWindowMs < 60_000 || maxWindowMs > MAX_WINDOW_LIMIT_MS) {
    issues.push({
      path: `${at}/maxWindow`,
      message: `must be a duration from 1m to ${formatDuration(MAX_WINDOW_LIMIT_MS)}, such as 15m or 8h`,
    });
  }
  const seen = new Map<string, number>();
  const points = raw.points.map((point, index) => {
    const path = `${at}/points/${index}`;
    const first = seen.get(point.point);
    if (first !== undefined)
      issues.push({ path: `${path}/point`, message: `is listed already at ${at}/points/${first}` });
    seen.set(point.point, index);
    return resolvePoint(issues, point, sources, baseDir, path);
  });
  return { maxWindowMs: maxWindowMs ?? Number.NaN, points };
}

function resolvePoint(
  issues: ConfigIssue[],
  raw: RawWritesConfig['points'][number],
  sources: readonly SourceConfig[] | undefined,
  baseDir: string,
  at: string,
): WritablePoint {
  const problem = sources === undefined ? undefined : writeProblem(sources, raw.point, raw.type);
  if (problem !== undefined) issues.push({ path: `${at}/point`, message: problem });
  checkRange(issues, raw, at);
  raw.writers.forEach((writer, index) => {
    if (!isAgentName(writer))
      issues.push({
        path: `${at}/writers/${index}`,
        message: 'must be an agent name (lower-case DNS label)',
      });
    if (raw.writers.indexOf(writer) !== index)
      issues.push({ path: `${at}/writers/${index}`, message: 'is listed twice' });
  });
  const signedBy = (raw.signedBy ?? []).flatMap((key, index) => {
    const pinned = resolveKey(issues, key, baseDir, `${at}/signedBy/${index}`);
    if (pinned !== undefined && !raw.writers.includes(pinned.agent))
      issues.push({
        path: `${at}/signedBy/${index}/agent`,
        message: 'is not one of the writers of this point',
      });
    return pinned === undefined ? [] : [pinned];
  });
  if (raw.signedBy !== undefined) {
    // A writer without a key could never write a point that needs signatures: say so now.
    for (const writer of raw.writers) {
      if (!raw.signedBy.some((key) => key.agent === writer))
        issues.push({
          path: `${at}/signedBy`,
          message: `pins no key for writer ${writer}, whose writes would all be refused`,
        });
    }
  }
  return {
    point: raw.point,
    type: raw.type,
    min: raw.min,
    max: raw.max,
    values: raw.values,
    writers: raw.writers,
    signedBy,
    window: raw.window,
  };
}

function checkRange(issues: ConfigIssue[], raw: RawWritesConfig['points'][number], at: string): void {
  if (raw.type !== 'number' && (raw.min !== undefined || raw.max !== undefined))
    issues.push({ path: `${at}/min`, message: 'min and max are for type number; use values' });
  if (raw.type === 'number' && raw.values === undefined && (raw.min === undefined || raw.max === undefined))
    // A setpoint with no bounds accepts whatever IT sends: the range is the point of the check.
    issues.push({ path: at, message: 'a number point needs min and max, or values' });
  if (raw.min !== undefined && raw.max !== undefined && raw.min > raw.max)
    issues.push({ path: `${at}/min`, message: 'must not exceed max' });
  raw.values?.forEach((value, index) => {
    if (typeof value !== raw.type)
      issues.push({ path: `${at}/values/${index}`, message: `must be a ${raw.type}, as the point's type` });
  });
}

function resolveKey(
  issues: ConfigIssue[],
  raw: NonNullable<RawWritesConfig['points'][number]['signedBy']>[number],
  baseDir: string,
  at: string,
): PinnedKey | undefined {
  if (!isAgentName(raw.agent))
    issues.push({ path: `${at}/agent`, message: 'must be an agent name (lower-case DNS label)' });
  const given = [raw.pem, raw.jwk, raw.file].filter((value) => value !== undefined).length;
  if (given !== 1) {
    issues.push({ path: at, message: 'needs exactly one of pem, jwk or file' });
    return undefined;
  }
  let where = at;
  try {
    let input: string | Record<string, unknown>;
    if (raw.file !== undefined) {
      where = `${at}/file`;
      input = readKeyFile(resolve(baseDir, raw.file));
    } else {
      where = raw.pem !== undefined ? `${at}/pem` : `${at}/jwk`;
      input = raw.pem ?? (raw.jwk as Record<string, unknown>);
    }
    const jwk = parsePublicKey(input);
    return { agent: raw.agent, jwk, kid: jwkThumbprint(jwk) };
  } catch (error) {
    const message =
      error instanceof DmzError && error.code === 'CONFIG_ERR_PERMISSIONS'
        ? `${error.message} (${error.hint})`
        : `is not an Ed25519 public key: ${(error as Error).message}`;
    issues.push({ path: where, message });
    return undefined;
  }
}

/**
 * A PEM file as it is, or a JWK file (`{` first) as its object. The pin decides whose signed
 * writes run: a file (or directory) another user could change is refused, as agent.yaml is.
 */
function readKeyFile(path: string): string | Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new Error(fileError('read', path, cause).message);
  }
  refuseWritableByOthers(path);
  if (text.length > MAX_KEY_TEXT_BYTES) throw new Error(`${path} is far larger than a public key`);
  return text.trimStart().startsWith('{') ? (JSON.parse(text) as Record<string, unknown>) : text;
}

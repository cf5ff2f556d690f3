/**
 * Topic grammar shared by relay and agents (DESIGN.md, "Topics, sessions, policy").
 *
 * A topic names where values are published: `/`-separated segments of `[A-Za-z0-9_.-]`. A filter
 * (a subscription, or a policy grant) may also use the MQTT wildcards, MQTT 3.1.1 section 4.7.1:
 * `+` stands for exactly one level, `#` for zero or more trailing levels, each only as a whole
 * segment. Unlike MQTT, empty levels do not exist here, so `#` alone still needs one level.
 */
import { DmzError } from './errors.ts';
import { MAX_TOPIC_BYTES, MAX_TOPIC_DEPTH, MAX_TOPIC_SEGMENT_BYTES } from './limits.ts';

const SLASH = 0x2f;
const PLUS = 0x2b;
const HASH = 0x23;
const DOT = 0x2e;
const DOLLAR = 0x24;

/** A table rather than a regex: publish topics are validated once per frame on the relay. */
const SEGMENT_CHARACTERS = new Uint8Array(128);
for (const character of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-') {
  SEGMENT_CHARACTERS[character.charCodeAt(0)] = 1;
}

type Kind = 'topic' | 'filter';

/** Throws RELAY_ERR_INVALID_TOPIC unless `topic` is a publishable topic (no wildcards). */
export function validateTopic(topic: string): void {
  const problem = findProblem(topic, 'topic');
  if (problem !== undefined) throw new DmzError('RELAY_ERR_INVALID_TOPIC', problem);
}

/** Throws RELAY_ERR_INVALID_TOPIC unless `filter` is a valid subscription filter. */
export function validateFilter(filter: string): void {
  const problem = findProblem(filter, 'filter');
  if (problem !== undefined) throw new DmzError('RELAY_ERR_INVALID_TOPIC', problem);
}

export function isValidTopic(value: string): boolean {
  return findProblem(value, 'topic') === undefined;
}

export function isValidFilter(value: string): boolean {
  return findProblem(value, 'filter') === undefined;
}

/**
 * Returns the first problem as a plain message, or undefined. Messages never echo control or
 * non-ASCII characters: they reach peers and logs, where such bytes could forge lines.
 */
function findProblem(value: string, kind: Kind): string | undefined {
  if (value.length === 0) return `${kind} is empty`;
  // Every character takes at least one UTF-8 byte, so this bound is sound before the charset is
  // known; once every character passed the ASCII-only charset, characters and bytes coincide.
  if (value.length > MAX_TOPIC_BYTES) return `${kind} longer than ${MAX_TOPIC_BYTES} bytes`;
  // MQTT brokers reserve `$` topics (`$SYS/...`, MQTT 3.1.1 section 4.7.2); name the reason.
  if (value.charCodeAt(0) === DOLLAR) return `${kind} must not start with "$"`;
  let level = 1;
  let start = 0;
  let wildcard = 0;
  for (let index = 0; index <= value.length; index++) {
    // The end of the string closes the last segment exactly like a slash would.
    const code = index < value.length ? value.charCodeAt(index) : SLASH;
    if (code === SLASH) {
      const problem = findSegmentProblem(value, start, index, level, wildcard);
      if (problem !== undefined) return problem;
      level++;
      if (index < value.length && level > MAX_TOPIC_DEPTH) {
        return `${kind} deeper than ${MAX_TOPIC_DEPTH} levels`;
      }
      start = index + 1;
      wildcard = 0;
    } else if (code === PLUS || code === HASH) {
      if (kind === 'topic') return 'wildcard not allowed in a topic';
      wildcard = code;
    } else if (SEGMENT_CHARACTERS[code] !== 1) {
      return describeBadCharacter(code, index);
    }
  }
  return undefined;
}

function findSegmentProblem(
  value: string,
  start: number,
  end: number,
  level: number,
  wildcard: number,
): string | undefined {
  const length = end - start;
  if (length === 0) return `empty segment at level ${level}`;
  if (length > MAX_TOPIC_SEGMENT_BYTES) {
    return `segment at level ${level} longer than ${MAX_TOPIC_SEGMENT_BYTES} bytes`;
  }
  // `.` and `..` mean something to every path-based consumer downstream (files, URLs, historians).
  if (
    value.charCodeAt(start) === DOT &&
    (length === 1 || (length === 2 && value.charCodeAt(end - 1) === DOT))
  ) {
    return `segment "${value.slice(start, end)}" is not allowed`;
  }
  if (wildcard !== 0 && length !== 1) {
    return `wildcard "${String.fromCharCode(wildcard)}" must be a whole segment (level ${level})`;
  }
  if (wildcard === HASH && end !== value.length) return 'wildcard "#" must be the last segment';
  return undefined;
}

function describeBadCharacter(code: number, offset: number): string {
  if (code < 0x20 || code === 0x7f) return `control character at offset ${offset}`;
  if (code === 0x20) return `space at offset ${offset}`;
  if (code > 0x7f) return `non-ASCII character at offset ${offset}`;
  return `character "${String.fromCharCode(code)}" not allowed at offset ${offset}`;
}

/**
 * True iff `topic` matches `filter`; both must already be valid. Called per published frame per
 * subscription, so it walks both strings by index and allocates nothing.
 */
export function topicMatches(filter: string, topic: string): boolean {
  const filterLength = filter.length;
  const topicLength = topic.length;
  let f = 0;
  let t = 0;
  // Invariant at the top of the loop: both f and t sit at the start of a segment.
  for (;;) {
    const code = filter.charCodeAt(f);
    // In a valid filter, a wildcard character at a segment start is the whole segment.
    if (code === HASH) return true;
    if (code === PLUS) {
      f++;
      while (t < topicLength && topic.charCodeAt(t) !== SLASH) t++;
    } else {
      while (f < filterLength && filter.charCodeAt(f) !== SLASH) {
        if (t >= topicLength || topic.charCodeAt(t) !== filter.charCodeAt(f)) return false;
        f++;
        t++;
      }
      if (t < topicLength && topic.charCodeAt(t) !== SLASH) return false;
    }
    if (f === filterLength) return t === topicLength;
    // The topic ran out first: only a trailing `/#` (zero more levels) still matches.
    if (t === topicLength) return f + 2 === filterLength && filter.charCodeAt(f + 1) === HASH;
    f++;
    t++;
  }
}

/**
 * True iff every topic `inner` matches is also matched by `outer` (both valid filters): a
 * requested subscription stays within a policy grant. Runs at subscribe time, not per frame, so
 * it splits for clarity.
 *
 * Comparing level by level is exact: whenever it answers false, `inner` with each `+` replaced by
 * one character and its `#` by zero or one level is a topic (within every limit) that `outer`
 * misses, and a `+` in `inner` is never covered by a literal because it admits 65 characters.
 */
export function filterCovers(outer: string, inner: string): boolean {
  const outerSegments = outer.split('/');
  const innerSegments = inner.split('/');
  for (let level = 0; ; level++) {
    const outerSegment = outerSegments[level];
    const innerSegment = innerSegments[level];
    if (outerSegment === '#') return true;
    if (innerSegment === undefined || outerSegment === undefined) return innerSegment === outerSegment;
    // A root `#` needs at least one level, so it is exactly `+/#`.
    if (innerSegment === '#') return level === 0 && outerSegment === '+' && outerSegments[1] === '#';
    if (outerSegment !== '+' && outerSegment !== innerSegment) return false;
  }
}

/**
 * The meet of two valid filters: the filter matching exactly the valid topics both match, or
 * undefined when no valid topic matches both. MQTT-style filters are closed under intersection:
 * level by level a literal meets `+` or itself, and a trailing `#` takes the other side's levels.
 *
 * Level-wise compatibility is not enough: the shortest common topic (a literal from either side,
 * one character for `+` against `+`, no level for a `#`) can exceed MAX_TOPIC_BYTES when each
 * filter puts long literals where the other has wildcards (`x/#` against `+/y` with long `x` and
 * `y`). Runs at session open and subscribe time, not per frame, so it splits for clarity.
 */
export function filterMeet(a: string, b: string): string | undefined {
  const left = toPattern(a);
  const right = toPattern(b);
  const levels = Math.max(left.levels.length, right.levels.length);
  // A closed filter matches its own depth only; an open one (`#`) that depth or deeper.
  const depthsMeet =
    (left.open || left.levels.length >= right.levels.length) &&
    (right.open || right.levels.length >= left.levels.length);
  if (!depthsMeet) return undefined;
  const meet: string[] = [];
  let bytes = levels - 1;
  for (let level = 0; level < levels; level++) {
    const segment = meetSegment(left.levels[level], right.levels[level]);
    if (segment === undefined) return undefined;
    meet.push(segment);
    bytes += segment === '+' ? 1 : segment.length;
  }
  if (bytes > MAX_TOPIC_BYTES) return undefined;
  // A deeper topic adds at least "/" and a character: with no room for that, `#` adds nothing, and
  // dropping it keeps the meet itself within MAX_TOPIC_BYTES (a valid filter).
  const open = left.open && right.open && bytes + 2 <= MAX_TOPIC_BYTES;
  if (!open) return meet.join('/');
  // `+/#` is what a root `#` means (one level or more): write it as the `#` it came from.
  return meet.length === 1 && meet[0] === '+' ? '#' : `${meet.join('/')}/#`;
}

/**
 * True iff some valid topic matches every one of the given valid filters: their meet, folded left,
 * exists. Pairwise overlaps are not enough (`press-7/#`, `#` and `press-9/#` overlap two by two),
 * and the shortest common topic of them all must still fit MAX_TOPIC_BYTES (see filterMeet).
 */
export function filtersIntersect(first: string, ...rest: readonly string[]): boolean {
  let meet: string | undefined = first;
  for (const filter of rest) {
    meet = filterMeet(meet, filter);
    if (meet === undefined) return false;
  }
  return true;
}

interface Pattern {
  /** Constraints on the first levels: a literal, or `+` for any one segment. */
  readonly levels: readonly string[];
  /** Whether deeper topics match too (the filter ended in `#`). */
  readonly open: boolean;
}

/** A filter as level constraints; a root `#` needs one level here, so it is `+/#`. */
function toPattern(filter: string): Pattern {
  const segments = filter.split('/');
  if (segments[segments.length - 1] !== '#') return { levels: segments, open: false };
  const levels = segments.slice(0, -1);
  return { levels: levels.length === 0 ? ['+'] : levels, open: true };
}

/** One level of the meet; a missing level lies under the other side's `#`. */
function meetSegment(a: string | undefined, b: string | undefined): string | undefined {
  if (a === undefined) return b;
  if (b === undefined || b === '+' || b === a) return a;
  return a === '+' ? b : undefined;
}

/**
 * True iff `topic` is `namespace` itself or lies below it: an OT agent named `press-7` publishes
 * under `press-7/...`, and `press-70/...` is someone else's.
 */
export function topicInNamespace(namespace: string, topic: string): boolean {
  if (namespace.length === 0 || !topic.startsWith(namespace)) return false;
  return topic.length === namespace.length || topic.charCodeAt(namespace.length) === SLASH;
}

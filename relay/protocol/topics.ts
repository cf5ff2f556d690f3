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
 * True iff some valid topic matches both filters: level-wise compatibility is not enough, because
 * the shortest common topic can exceed MAX_TOPIC_BYTES when each filter puts long literals where
 * the other has wildcards (`x/#` against `+/y` with long `x` and `y`).
 */
export function filtersIntersect(a: string, b: string): boolean {
  const aSegments = a.split('/');
  const bSegments = b.split('/');
  // The shortest common topic: a literal from either side, one character for a `+` against `+`.
  let bytes = 0;
  let levels = 0;
  const addLevel = (segment: string): void => {
    bytes += segment === '+' ? 1 : segment.length;
    levels++;
  };
  for (let level = 0; ; level++) {
    const aSegment = aSegments[level];
    const bSegment = bSegments[level];
    if (aSegment === '#' || bSegment === '#') {
      // The `#` side takes whatever levels the other side still names.
      const rest = aSegment === '#' ? bSegments : aSegments;
      for (const segment of rest.slice(level)) if (segment !== '#') addLevel(segment);
      break;
    }
    if (aSegment === undefined || bSegment === undefined) {
      if (aSegment !== bSegment) return false;
      break;
    }
    if (aSegment === '+') addLevel(bSegment);
    else if (bSegment === '+' || bSegment === aSegment) addLevel(aSegment);
    else return false;
  }
  // Two `#` at the root meet in any one-level topic; depth never exceeds the deeper filter's.
  return levels === 0 || bytes + levels - 1 <= MAX_TOPIC_BYTES;
}

/**
 * True iff `topic` is `namespace` itself or lies below it: an OT agent named `press-7` publishes
 * under `press-7/...`, and `press-70/...` is someone else's.
 */
export function topicInNamespace(namespace: string, topic: string): boolean {
  if (namespace.length === 0 || !topic.startsWith(namespace)) return false;
  return topic.length === namespace.length || topic.charCodeAt(namespace.length) === SLASH;
}

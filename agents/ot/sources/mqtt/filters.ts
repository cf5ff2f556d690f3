/**
 * MQTT topic filters as a broker reads them (MQTT 3.1.1 section 4.7), not the relay's stricter
 * topic grammar: levels may hold any UTF-8 but NUL, may be empty, and `+` (one level) and `#` (the
 * parent and every level below) stand alone in their level, `#` last. Matching a topic also yields
 * what each wildcard matched, in order, for a mapping's topic template.
 */

const PLUS = '+';
const HASH = '#';

/** The first problem of `filter` as a broker would see it, or undefined. */
export function findFilterProblem(filter: string): string | undefined {
  if (filter.length === 0) return 'filter is empty';
  if (filter.includes('\u0000')) return 'filter holds a NUL character (MQTT 3.1.1 section 1.5.3)';
  const levels = filter.split('/');
  for (const [index, level] of levels.entries()) {
    if (level.includes(HASH) && (level !== HASH || index !== levels.length - 1)) {
      return '"#" must be a whole level and the last one (MQTT 3.1.1 section 4.7.1.2)';
    }
    if (level.includes(PLUS) && level !== PLUS) {
      return '"+" must be a whole level (MQTT 3.1.1 section 4.7.1.3)';
    }
  }
  return undefined;
}

/** How many wildcards the filter holds: the placeholders `{1}` .. `{n}` its template may use. */
export function wildcardCount(filter: string): number {
  return filter.split('/').filter((level) => level === PLUS || level === HASH).length;
}

/** A valid filter, split once for matching every message against it. */
export class TopicFilter {
  readonly filter: string;
  readonly #levels: readonly string[];

  constructor(filter: string) {
    this.filter = filter;
    this.#levels = filter.split('/');
  }

  /**
   * What each wildcard matched when `topic` matches (a `#` yields the levels it stood for, joined
   * with `/`, empty when it matched the parent alone), or undefined when it does not match.
   */
  match(topic: string): string[] | undefined {
    const levels = topic.split('/');
    // Section 4.7.2: a filter starting with a wildcard does not match topics starting with `$`.
    const first = this.#levels[0];
    if (topic.startsWith('$') && (first === PLUS || first === HASH)) return undefined;
    const captures: string[] = [];
    for (const [index, level] of this.#levels.entries()) {
      if (level === HASH) {
        captures.push(levels.slice(index).join('/'));
        return captures;
      }
      const actual = levels[index];
      if (actual === undefined) return undefined;
      if (level === PLUS) captures.push(actual);
      else if (level !== actual) return undefined;
    }
    return levels.length === this.#levels.length ? captures : undefined;
  }
}

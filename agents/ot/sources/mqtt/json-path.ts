/**
 * The small JSON path a mapping reads a value or a timestamp with: `$`, then `.name` (letters,
 * digits, `_`, `-`) or `[index]` steps, e.g. `$.data.temp` or `$.values[0]`. No filters, no
 * wildcards, no expressions, no evaluation: a path is parsed once, at configuration, into steps that
 * are walked over the parsed payload, reading own properties only (a payload's `__proto__` or
 * `constructor` key is data like any other, never the prototype). The query languages of the JSON
 * path libraries are more than a point needs and a larger surface than these twenty lines.
 */

/** Steps in one path: a payload's field a few levels down, not a search. */
export const MAX_JSON_PATH_STEPS = 16;

export type JsonPathStep = { readonly key: string } | { readonly index: number };

const STEP = /\.([A-Za-z0-9_-]+)|\[([0-9]{1,9})\]/y;

/** The steps of `path`, or what is wrong with it ("does not start with ..."). */
export function parseJsonPath(path: string): JsonPathStep[] | string {
  if (!path.startsWith('$')) return 'does not start with "$"';
  const steps: JsonPathStep[] = [];
  STEP.lastIndex = 1;
  while (STEP.lastIndex < path.length) {
    const at = STEP.lastIndex;
    const match = STEP.exec(path);
    if (match === null) {
      return `has an unreadable step at offset ${at} (steps are .name, of letters, digits, _ and -, or [index])`;
    }
    steps.push(match[1] === undefined ? { index: Number(match[2]) } : { key: match[1] });
    if (steps.length > MAX_JSON_PATH_STEPS) return `has more than ${MAX_JSON_PATH_STEPS} steps`;
  }
  return steps;
}

/** What the steps lead to in `document` (a parsed JSON value), or undefined if nothing is there. */
export function readJsonPath(document: unknown, steps: readonly JsonPathStep[]): unknown {
  let node = document;
  for (const step of steps) {
    if ('index' in step) {
      if (!Array.isArray(node) || step.index >= node.length) return undefined;
      node = node[step.index] as unknown;
    } else {
      if (typeof node !== 'object' || node === null || Array.isArray(node)) return undefined;
      if (!Object.hasOwn(node, step.key)) return undefined;
      node = (node as Record<string, unknown>)[step.key];
    }
  }
  return node;
}

/**
 * A mapping's point topic template: `plant/{1}/temp`, where `{n}` is what the filter's n-th
 * wildcard matched. The rendered topic goes under `<agent>/<prefix>/` and must pass the relay's
 * topic grammar like any other; a message whose levels do not fit it is dropped and counted.
 */

const PLACEHOLDER = /\{([0-9]+)\}/g;

export type TemplatePart = string | { readonly wildcard: number };

export function templateHasPlaceholders(template: string): boolean {
  return /\{[0-9]+\}/.test(template);
}

/** The template's literal text and placeholders, in order; wildcards are numbered from 1. */
export function parseTemplate(template: string): TemplatePart[] {
  const parts: TemplatePart[] = [];
  let last = 0;
  for (const match of template.matchAll(PLACEHOLDER)) {
    if (match.index > last) parts.push(template.slice(last, match.index));
    parts.push({ wildcard: Number(match[1]) });
    last = match.index + match[0].length;
  }
  if (last < template.length) parts.push(template.slice(last));
  return parts;
}

/**
 * The first problem of a template for a filter with `wildcards` wildcards, or undefined. A sample
 * rendering (every placeholder an `x`) must be a valid topic; the caller checks that, with the
 * agent's namespace in front.
 */
export function findTemplateProblem(template: string, wildcards: number): string | undefined {
  for (const part of parseTemplate(template)) {
    if (typeof part === 'string') {
      if (part.includes('{') || part.includes('}')) {
        return "braces only as placeholders {1}, {2}, ... of the filter's wildcards";
      }
    } else if (part.wildcard < 1 || part.wildcard > wildcards) {
      return wildcards === 0
        ? `{${part.wildcard}} has no wildcard to stand for: the filter has none`
        : `{${part.wildcard}} names no wildcard: the filter has ${wildcards} (${describeRange(wildcards)})`;
    }
  }
  return undefined;
}

/** The template with every placeholder replaced by what its wildcard matched. */
export function renderTemplate(parts: readonly TemplatePart[], captures: readonly string[]): string {
  let topic = '';
  for (const part of parts) topic += typeof part === 'string' ? part : (captures[part.wildcard - 1] ?? '');
  return topic;
}

/** A template with a stand-in for every placeholder, to check its shape before any message. */
export function sampleTopic(template: string): string {
  return parseTemplate(template)
    .map((part) => (typeof part === 'string' ? part : 'x'))
    .join('');
}

function describeRange(wildcards: number): string {
  return wildcards === 1 ? '{1}' : `{1} to {${wildcards}}`;
}

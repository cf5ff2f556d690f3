/**
 * The checks that several kinds of source make on their config sections the same way: a name that
 * is one topic segment, a prefix that is a topic, a duration within bounds. Each problem is pushed
 * with its key path; the functions say whether the value passed, so a caller can skip the checks
 * that depend on it.
 */
import { formatDuration, parseDuration } from '../../../pki/duration.ts';
import type { ConfigIssue } from '../../../relay/protocol/errors.ts';
import { validateTopic } from '../../../relay/protocol/topics.ts';

/** True when `text` is a valid publish topic (the agent's name is added later, in front). */
export function checkTopicText(issues: ConfigIssue[], at: string, text: string): boolean {
  try {
    validateTopic(text);
    return true;
  } catch (error) {
    issues.push({ path: at, message: `not a valid topic: ${(error as Error).message}` });
    return false;
  }
}

/** True when `name` is one topic segment: a source's or a point's name. */
export function checkTopicSegment(issues: ConfigIssue[], at: string, name: string): boolean {
  if (name.includes('/')) {
    issues.push({ path: at, message: 'must be one topic segment (no "/")' });
    return false;
  }
  return checkTopicText(issues, at, name);
}

/** The duration in milliseconds, or undefined (and an issue) unless it is within [minMs, maxMs]. */
export function checkDuration(
  issues: ConfigIssue[],
  at: string,
  text: string,
  minMs: number,
  maxMs: number,
): number | undefined {
  const ms = parseDuration(text, { milliseconds: true });
  if (ms === undefined || ms < minMs || ms > maxMs) {
    issues.push({
      path: at,
      message: `must be a duration like 100ms, 5s or 1m, from ${formatDuration(minMs)} to ${formatDuration(maxMs)}`,
    });
    return undefined;
  }
  return ms;
}

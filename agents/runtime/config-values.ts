/**
 * The agent config's value parsers that report into the list of issues instead of throwing, so
 * one run over a config names every key that is wrong (durations, sizes, loopback hosts).
 */
import { parseByteSize } from '../../relay/protocol/byte-size.ts';
import type { ConfigIssue } from '../../relay/protocol/errors.ts';
import { formatDuration, parseDuration } from '../../pki/duration.ts';

/**
 * What a duration or size that did not parse stands for until the issues are thrown: every
 * comparison with NaN is false, so a check across two keys (reconnectBase <= reconnectCap,
 * segmentBytes <= maxBytes / 4) stays silent rather than blame a key the operator got right.
 */
export const NOT_A_VALUE = Number.NaN;

export function duration(
  issues: ConfigIssue[],
  path: string,
  text: string,
  min: number,
  max: number,
): number {
  const ms = parseDuration(text, { milliseconds: true });
  if (ms === undefined || ms < min || ms > max) {
    issues.push({
      path,
      message: `must be a duration like 500ms, 10s, 5m, 12h or 7d, from ${formatDuration(min)} to ${formatDuration(max)}`,
    });
    return NOT_A_VALUE;
  }
  return ms;
}

export function size(issues: ConfigIssue[], path: string, value: string | number): number {
  const bytes = parseByteSize(value);
  if (bytes === undefined || bytes < 64 * 1024) {
    issues.push({ path, message: 'must be a size like 64MiB or 2GiB (at least 64KiB)' });
    return NOT_A_VALUE;
  }
  return bytes;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

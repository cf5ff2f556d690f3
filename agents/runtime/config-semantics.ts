/**
 * The agent config's checks across keys, run once the schema and the value parsers passed: what
 * no single key's schema can say (a wss:// URL, loopback listeners, sinks and consumers that name
 * each other, overlapping consumers of one sink).
 */
import { formatByteSize } from '../../relay/protocol/byte-size.ts';
import type { ConfigIssue } from '../../relay/protocol/errors.ts';
import { isAgentName } from '../../relay/protocol/identity.ts';
import { filtersIntersect, isValidFilter, validateFilter } from '../../relay/protocol/topics.ts';
import { MAX_SEGMENT_BYTES } from '../ot/log/limits.ts';
import type { AgentConfig } from './config.ts';
import { isLoopback } from './config-values.ts';

export function checkSemantics(config: AgentConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  if (config.it !== undefined && config.it.consume.length === 0 && config.it.tunnels.length === 0) {
    issues.push({
      path: '/it',
      message: 'must have consume or tunnels: an IT agent with neither does nothing',
    });
  }
  if (config.ot !== undefined && config.ot.sources.length === 0 && config.ot.services.length === 0) {
    issues.push({
      path: '/ot',
      message: 'must have sources or services: an OT agent with neither does nothing',
    });
  }
  let url: URL | undefined;
  try {
    url = new URL(config.relay.url);
  } catch {
    url = undefined;
  }
  if (url?.protocol !== 'wss:') {
    issues.push({
      path: '/relay/url',
      message: 'must be a wss:// URL, such as wss://relay.example:8443/v1/agent',
    });
  }
  if (config.relay.reconnectBaseMs > config.relay.reconnectCapMs) {
    issues.push({ path: '/relay/reconnectBase', message: 'must not exceed relay.reconnectCap' });
  }
  if (config.admin !== undefined && !isLoopback(config.admin.host)) {
    issues.push({
      path: '/admin/host',
      message: 'must be a loopback address (127.0.0.0/8, ::1 or localhost)',
    });
  }
  if (config.ot !== undefined && config.ot.log.segmentBytes > MAX_SEGMENT_BYTES) {
    issues.push({
      path: '/ot/log/segmentBytes',
      message: `must be at most ${formatByteSize(MAX_SEGMENT_BYTES)}`,
    });
  }
  if (config.ot !== undefined && config.ot.log.segmentBytes * 4 > config.ot.log.maxBytes) {
    issues.push({ path: '/ot/log/segmentBytes', message: 'must be at most a quarter of ot.log.maxBytes' });
  }
  const api = config.it?.api;
  // Plant data and writes off this host: only over TLS, and only to someone who authenticates.
  if (
    api !== undefined &&
    !isLoopback(api.listen.host) &&
    (api.tls === undefined || api.users === undefined)
  ) {
    issues.push({
      path: '/it/api/listen/host',
      message: 'a listener off loopback needs it.api.tls and it.api.users',
    });
  }
  const sinks = new Set<string>();
  config.it?.sinks.forEach((sink, index) => {
    if (sinks.has(sink.name))
      issues.push({ path: `/it/sinks/${index}/name`, message: 'names another sink too' });
    sinks.add(sink.name);
  });
  const consumers = new Set<string>();
  config.it?.consume.forEach((consume, index) => {
    const at = `/it/consume/${index}`;
    if (!isAgentName(consume.from))
      issues.push({ path: `${at}/from`, message: 'must be an agent name (lower-case DNS label)' });
    try {
      validateFilter(consume.filter);
    } catch (error) {
      issues.push({ path: `${at}/filter`, message: (error as Error).message });
    }
    if (!sinks.has(consume.sink)) issues.push({ path: `${at}/sink`, message: 'names no sink in it.sinks' });
    if (consumers.has(consume.name))
      issues.push({ path: `${at}/name`, message: 'names another consumer too' });
    // Two consumers writing the same streams into one sink would each refuse the other's order.
    const earlier = (config.it?.consume ?? [])
      .slice(0, index)
      .findIndex(
        (other) =>
          other.sink === consume.sink &&
          other.from === consume.from &&
          isValidFilter(other.filter) &&
          isValidFilter(consume.filter) &&
          filtersIntersect(other.filter, consume.filter),
      );
    if (earlier >= 0) {
      issues.push({
        path: `${at}/filter`,
        message: `overlaps /it/consume/${earlier}, which writes the same streams of ${consume.from} into sink ${consume.sink}; give one of them another sink`,
      });
    }
    consumers.add(consume.name);
  });
  return issues;
}

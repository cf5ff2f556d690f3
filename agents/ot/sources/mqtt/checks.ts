/**
 * The checks of an MQTT section that its schema cannot make: the broker URL and the keys that go
 * with its scheme, filters as a broker reads them, topic templates that fit the filter and the
 * topic grammar, JSON paths, Sparkplug ids. Each problem names its key path. Files are read when
 * connecting (a renewed certificate is picked up by the next connection), not here.
 */
import { isIP } from 'node:net';
import type { ConfigIssue } from '../../../../relay/protocol/errors.ts';
import { checkDuration, checkTopicSegment, checkTopicText } from '../config-checks.ts';
import { parseBrokerUrl } from './broker-url.ts';
import {
  MAX_KEEPALIVE_MS,
  MIN_KEEPALIVE_MS,
  RAW_VALUE,
  topicPrefix,
  type MqttBrokerConfig,
  type MqttConfig,
  type MqttMappingConfig,
} from './config.ts';
import { findFilterProblem, wildcardCount } from './filters.ts';
import { parseJsonPath } from './json-path.ts';
import { findIdProblem } from './sparkplug/topics.ts';
import { findTemplateProblem, sampleTopic, templateHasPlaceholders } from './topic-template.ts';

/** Problems of a schema-valid MQTT section, with key paths under `at`. */
export function checkMqttConfig(config: MqttConfig, at: string): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  checkTopicSegment(issues, `${at}/name`, config.name);
  if (config.prefix !== undefined) checkTopicText(issues, `${at}/prefix`, config.prefix);
  checkBroker(issues, `${at}/broker`, config.broker);
  const filters = new Map<string, string>();
  const topics = new Map<string, string>();
  config.mappings.forEach((mapping, index) => {
    const path = `${at}/mappings/${index}`;
    checkMapping(issues, path, mapping, topicPrefix(config));
    claim(issues, filters, mapping.filter, `${path}/filter`, 'filter');
    if (!templateHasPlaceholders(mapping.topic))
      claim(issues, topics, mapping.topic, `${path}/topic`, 'topic');
  });
  if (config.sparkplug !== undefined) {
    const { group, edgeNode } = config.sparkplug;
    checkId(issues, `${at}/sparkplug/group`, group);
    if (edgeNode !== undefined) checkId(issues, `${at}/sparkplug/edgeNode`, edgeNode);
  }
  if (config.mappings.length === 0 && config.sparkplug === undefined) {
    issues.push({ path: `${at}/mappings`, message: 'needs at least one mapping, or sparkplug' });
  }
  return issues;
}

/** The broker section's checks, shared with the IT side's MQTT bridge (agents/it/sinks/mqtt/config.ts). */
export function checkBroker(issues: ConfigIssue[], at: string, broker: MqttBrokerConfig): void {
  const address = parseBrokerUrl(broker.url);
  if (typeof address === 'string') issues.push({ path: `${at}/url`, message: address });
  const tls = typeof address === 'object' && address.protocol === 'mqtts';
  for (const key of ['ca', 'cert', 'key'] as const) {
    if (broker[key] !== undefined && typeof address === 'object' && !tls) {
      issues.push({ path: `${at}/${key}`, message: 'applies to mqtts:// only' });
    }
  }
  if ((broker.cert === undefined) !== (broker.key === undefined)) {
    const missing = broker.cert === undefined ? 'cert' : 'key';
    issues.push({ path: `${at}/${missing}`, message: 'is required with cert and key: they go together' });
  }
  // MQTT 3.1.1 section 3.1.2.9: a password is only sent after a user name.
  if (broker.passwordFile !== undefined && broker.username === undefined) {
    issues.push({
      path: `${at}/username`,
      message: 'is required with passwordFile (MQTT 3.1.1 section 3.1.2.9)',
    });
  }
  if (broker.clientId?.includes('\u0000') === true) {
    issues.push({ path: `${at}/clientId`, message: 'must not hold a NUL character' });
  }
  if (broker.localAddress !== undefined && isIP(broker.localAddress) === 0) {
    issues.push({ path: `${at}/localAddress`, message: 'must be an IP address of this host' });
  }
  const keepaliveMs = checkDuration(
    issues,
    `${at}/keepalive`,
    broker.keepalive,
    MIN_KEEPALIVE_MS,
    MAX_KEEPALIVE_MS,
  );
  if (keepaliveMs !== undefined && keepaliveMs % 1000 !== 0) {
    issues.push({ path: `${at}/keepalive`, message: 'must be whole seconds: MQTT counts it in seconds' });
  }
}

function checkMapping(issues: ConfigIssue[], at: string, mapping: MqttMappingConfig, prefix: string): void {
  const filterProblem = findFilterProblem(mapping.filter);
  if (filterProblem !== undefined) issues.push({ path: `${at}/filter`, message: filterProblem });
  const templateProblem = findTemplateProblem(mapping.topic, wildcardCount(mapping.filter));
  if (templateProblem !== undefined) {
    issues.push({ path: `${at}/topic`, message: templateProblem });
  } else {
    checkTopicText(issues, `${at}/topic`, `${prefix}/${sampleTopic(mapping.topic)}`);
  }
  const json = mapping.value !== RAW_VALUE;
  if (json) checkPath(issues, `${at}/value`, mapping.value, `"${RAW_VALUE}" or a JSON path like $.value`);
  if (mapping.timestamp !== undefined) {
    if (json) checkPath(issues, `${at}/timestamp`, mapping.timestamp, 'a JSON path like $.time');
    else
      issues.push({
        path: `${at}/timestamp`,
        message: 'needs a JSON value path: a raw payload has no timestamp',
      });
  }
}

function checkPath(issues: ConfigIssue[], at: string, path: string, expected: string): void {
  const steps = parseJsonPath(path);
  if (typeof steps === 'string') issues.push({ path: at, message: `must be ${expected}; this one ${steps}` });
}

function checkId(issues: ConfigIssue[], at: string, id: string): void {
  const problem = findIdProblem(id);
  if (problem !== undefined) issues.push({ path: at, message: problem });
}

function claim(
  issues: ConfigIssue[],
  seen: Map<string, string>,
  value: string,
  at: string,
  what: string,
): void {
  const first = seen.get(value);
  if (first === undefined) seen.set(value, at);
  else issues.push({ path: at, message: `${what} ${value} is already used at ${first}` });
}

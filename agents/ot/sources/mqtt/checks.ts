/**
 * The checks of an MQTT section that its schema cannot make: the broker section's (shared with
 * the MQTT bridge: agents/mqtt/broker-config.ts), filters as a broker reads them, topic templates
 * that fit the filter and the topic grammar, JSON paths, Sparkplug ids. Each problem names its key
 * path.
 */
import type { ConfigIssue } from '../../../../relay/protocol/errors.ts';
import { checkBroker } from '../../../mqtt/broker-config.ts';
import { checkTopicSegment, checkTopicText } from '../config-checks.ts';
import { RAW_VALUE, topicPrefix, type MqttConfig, type MqttMappingConfig } from './config.ts';
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

/**
 * A source's mappings, compiled once: the filter split for matching, the topic template parsed,
 * the JSON paths parsed. A message goes to the first mapping, in config order, whose filter it
 * matches. The topics of mappings without wildcards are claimed at creation.
 */
import { ConfigError, type ConfigIssue } from '../../../../relay/protocol/errors.ts';
import { isValidTopic } from '../../../../relay/protocol/topics.ts';
import type { SourceContext, TopicMetadata } from '../source.ts';
import { RAW_VALUE, topicPrefix, type MqttConfig, type MqttMappingConfig } from './config.ts';
import { TopicFilter } from './filters.ts';
import { parseJsonPath, type JsonPathStep } from './json-path.ts';
import type { ValueRule } from './payload-values.ts';
import {
  parseTemplate,
  renderTemplate,
  sampleTopic,
  templateHasPlaceholders,
  type TemplatePart,
} from './topic-template.ts';
import type { TopicTable } from './topic-table.ts';

export interface CompiledMapping {
  /** Its index in the config: the owner of the topics it writes. */
  readonly index: number;
  readonly filter: TopicFilter;
  readonly template: readonly TemplatePart[];
  readonly rule: ValueRule;
  readonly metadata: TopicMetadata;
}

export interface MatchedMapping {
  readonly mapping: CompiledMapping;
  /** The point topic below the source's prefix. */
  readonly relativeTopic: string;
}

/** The mappings of a checked config (their paths parse: checks.ts made sure). */
export function compileMappings(mappings: readonly MqttMappingConfig[]): CompiledMapping[] {
  return mappings.map((mapping, index) => ({
    index,
    filter: new TopicFilter(mapping.filter),
    template: parseTemplate(mapping.topic),
    rule: {
      valuePath: mapping.value === RAW_VALUE ? undefined : checkedPath(mapping.value),
      type: mapping.type,
      timestampPath: mapping.timestamp === undefined ? undefined : checkedPath(mapping.timestamp),
      timestampUnit: mapping.timestampUnit,
    },
    metadata: mapping.unit === undefined ? {} : { unit: mapping.unit },
  }));
}

export function findMapping(mappings: readonly CompiledMapping[], topic: string): MatchedMapping | undefined {
  for (const mapping of mappings) {
    const captures = mapping.filter.match(topic);
    if (captures !== undefined) return { mapping, relativeTopic: renderTemplate(mapping.template, captures) };
  }
  return undefined;
}

function checkedPath(path: string): JsonPathStep[] {
  const steps = parseJsonPath(path);
  if (typeof steps === 'string') throw new RangeError(`unchecked JSON path ${path}: ${steps}`);
  return steps;
}

/**
 * The topics of mappings without wildcards are claimed now, and every mapping's topic and the
 * Sparkplug namespace are checked under the agent's name (the config checks could not know it).
 */
export function claimKnownTopics(
  table: TopicTable,
  config: MqttConfig,
  mappings: readonly CompiledMapping[],
  context: SourceContext,
): void {
  const at = context.configPath ?? '';
  const namespace = `${context.agentName}/${topicPrefix(config)}`;
  const issues: ConfigIssue[] = [];
  config.mappings.forEach((mapping, index) => {
    if (!isValidTopic(`${namespace}/${sampleTopic(mapping.topic)}`)) {
      issues.push({
        path: `${at}/mappings/${index}/topic`,
        message: `does not fit under agent ${context.agentName}`,
      });
    } else if (!templateHasPlaceholders(mapping.topic)) {
      table.claim(mapping.topic, mappingOwner(index), mappings[index]?.metadata);
    }
  });
  if (config.sparkplug !== undefined && !isValidTopic(`${namespace}/x`)) {
    issues.push({ path: `${at}/prefix`, message: `does not fit under agent ${context.agentName}` });
  }
  if (issues.length > 0) throw new ConfigError(issues, `source ${config.name}`);
}

/** The owner of a mapping's topics in the topic table. */
export function mappingOwner(index: number): string {
  return `mapping ${index}`;
}

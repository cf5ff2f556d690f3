/**
 * The source registry: every kind of source by its config `type` (smallstep's cas/apiv1
 * registry.go), the schema of one source's config section that the agent config embeds, the checks
 * that go with it, and createSource. A new kind of source is one entry in SOURCE_BACKENDS and one
 * member of SourceConfigSchema.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { collectSchemaIssues, dedupeIssues, deepFreeze } from '../../../relay/protocol/config-schema.ts';
import { ConfigError, type ConfigIssue } from '../../../relay/protocol/errors.ts';
import { ModbusConfigSchema } from './modbus/config.ts';
import { MODBUS_SOURCE } from './modbus/modbus-source.ts';
import { MqttConfigSchema } from './mqtt/config.ts';
import { MQTT_SOURCE } from './mqtt/mqtt-source.ts';
import { OpcuaConfigSchema } from './opcua/config.ts';
import { OPCUA_SOURCE } from './opcua/opcua-source.ts';
import { SimulatorConfigSchema } from './simulator-config.ts';
import { SIMULATOR_SOURCE } from './simulator.ts';
import type { PointSource, SourceBackend, SourceContext, WriteValueType } from './source.ts';

/** A source's config section: a union by `type`. */
export const SourceConfigSchema = Type.Union([
  SimulatorConfigSchema,
  ModbusConfigSchema,
  OpcuaConfigSchema,
  MqttConfigSchema,
]);
export type SourceConfig = Static<typeof SourceConfigSchema>;
export type SourceType = SourceConfig['type'];

const SOURCE_BACKENDS: {
  readonly [Type in SourceType]: SourceBackend<Extract<SourceConfig, { type: Type }>>;
} = {
  simulator: SIMULATOR_SOURCE,
  modbus: MODBUS_SOURCE,
  opcua: OPCUA_SOURCE,
  mqtt: MQTT_SOURCE,
};

export const SOURCE_TYPES = Object.freeze(Object.keys(SOURCE_BACKENDS) as SourceType[]);

/**
 * Every problem of one source's config section, with key paths under `at` (`/sources/2`). Fills
 * the defaults into `value` in place (as Value.Default does): pass your own copy.
 *
 * The type is looked at first and the section checked against that type's schema alone, so an
 * error names the key that is wrong rather than "matches no member of the union".
 */
export function checkSourceConfig(value: unknown, at = ''): ConfigIssue[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return [{ path: at, message: 'must be a mapping of keys to values' }];
  }
  const type = (value as { type?: unknown }).type;
  const backend = findBackend(type);
  if (backend === undefined) {
    return [{ path: `${at}/type`, message: `must be one of: ${SOURCE_TYPES.join(', ')}` }];
  }
  Value.Default(backend.schema, value);
  const issues = collectSchemaIssues(backend.schema, value, at);
  // The semantic checks assume the shape; while it is wrong, its errors say enough.
  return issues.length > 0 ? issues : backend.check(value as SourceConfig, at);
}

/**
 * Every problem of a list of source sections (the agent config's `sources`), defaults filled in
 * place: each section's own, and names or topics that two sources share (two sources writing one
 * topic would interleave two streams into one).
 */
export function checkSourceConfigs(value: unknown, at = '/sources'): ConfigIssue[] {
  if (!Array.isArray(value)) return [{ path: at, message: 'must be a list of sources' }];
  const issues: ConfigIssue[] = [];
  const names = new Map<string, string>();
  const topics = new Map<string, string>();
  value.forEach((section: unknown, index) => {
    const path = `${at}/${index}`;
    const own = checkSourceConfig(section, path);
    issues.push(...own);
    if (own.length > 0) return;
    const config = section as SourceConfig;
    const first = names.get(config.name);
    if (first === undefined) names.set(config.name, `${path}/name`);
    else
      issues.push({
        path: `${path}/name`,
        message: `source name ${config.name} is already used at ${first}`,
      });
    for (const topic of backendOf(config).topics(config)) {
      const owner = topics.get(topic);
      if (owner === undefined) {
        topics.set(topic, path);
      } else if (owner !== path) {
        issues.push({ path, message: `writes topic ${topic}, which the source at ${owner} writes too` });
        break;
      }
    }
  });
  return dedupeIssues(issues);
}

/** One source section, defaults filled in and frozen; ConfigError listing every problem otherwise. */
export function validateSourceConfig(input: unknown, at = '', source = 'source configuration'): SourceConfig {
  const value = structuredClone(input);
  const issues = checkSourceConfig(value, at);
  if (issues.length > 0) throw new ConfigError(issues, source);
  return deepFreeze(value as SourceConfig);
}

/**
 * The source a section describes, of the backend its `type` names; the section is checked again
 * (it may come from code rather than a checked file). ConfigError if it is invalid, or if a topic
 * does not fit under the agent's name.
 */
export function createSource(config: SourceConfig, context: SourceContext): PointSource {
  const checked = validateSourceConfig(config, context.configPath ?? '', `source ${config.name}`);
  return backendOf(checked).create(checked, context);
}

/**
 * Why point `topic` (below the agent's namespace) of a valid list of sources cannot take writes of
 * `valueType`; undefined when one of them has the point and takes such writes.
 */
export function writeProblem(
  sources: readonly SourceConfig[],
  topic: string,
  valueType: WriteValueType,
): string | undefined {
  const owner = sources.find((config) => backendOf(config).topics(config).includes(topic));
  if (owner === undefined) return 'is no point of any source in ot.sources';
  const backend = backendOf(owner);
  if (backend.checkWrite === undefined)
    return `is a point of source ${owner.name}, whose type ${owner.type} takes no writes`;
  return backend.checkWrite(owner, topic, valueType);
}

function findBackend(type: unknown): SourceBackend<SourceConfig> | undefined {
  if (typeof type !== 'string' || !Object.hasOwn(SOURCE_BACKENDS, type)) return undefined;
  return SOURCE_BACKENDS[type as SourceType];
}

function backendOf(config: SourceConfig): SourceBackend<SourceConfig> {
  return SOURCE_BACKENDS[config.type];
}

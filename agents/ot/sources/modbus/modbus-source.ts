/**
 * The `modbus` source: Modbus TCP devices polled for their registers, coils and inputs, each
 * device by a poller of its own (device-poller.ts), reported by exception with a heartbeat. This
 * is the backend the registry knows as `modbus`; reads only (writes come with the OT write checks).
 */
import { ConfigError, DmzError, type ConfigIssue } from '../../../../relay/protocol/errors.ts';
import { validateTopic } from '../../../../relay/protocol/topics.ts';
import {
  PLATFORM_TIMERS,
  type PointSource,
  type SourceBackend,
  type SourceContext,
  type SourceError,
  type SourceOutput,
  type SourceStats,
  type TopicMetadata,
} from '../source.ts';
import { checkModbusConfig } from './checks.ts';
import { ModbusConfigSchema, type ModbusConfig } from './config.ts';
import { DevicePoller, type DeviceStats } from './device-poller.ts';
import { modbusTopics, resolveDevices } from './register-map.ts';

export const MODBUS_SOURCE: SourceBackend<ModbusConfig> = {
  schema: ModbusConfigSchema,
  check: checkModbusConfig,
  topics: modbusTopics,
  create: (config, context) => new ModbusSource(config, context),
};

/** The source's stats, and each device's: connection, requests per cycle, failures. */
export interface ModbusSourceStats extends SourceStats {
  readonly devices: readonly DeviceStats[];
}

export interface ModbusSourceOptions {
  /** [0, 1) for the reconnect backoff's jitter (default Math.random); tests make it 0. */
  readonly random?: () => number;
}

export class ModbusSource implements PointSource {
  readonly type = 'modbus';
  readonly name: string;
  readonly topics: readonly string[];
  readonly topicMetadata: ReadonlyMap<string, TopicMetadata>;
  readonly #pollers: readonly DevicePoller[];
  #state: 'ready' | 'running' | 'stopped' = 'ready';

  /** A source for a valid config (createSource checks it); ConfigError if a topic does not fit. */
  constructor(config: ModbusConfig, context: SourceContext, options: ModbusSourceOptions = {}) {
    const devices = resolveDevices(config);
    const topicOf = (point: { readonly topic: string }) => `${context.agentName}/${point.topic}`;
    checkTopics(config, context);
    this.name = config.name;
    this.topics = Object.freeze(modbusTopics(config).map((topic) => `${context.agentName}/${topic}`));
    this.topicMetadata = new Map(
      devices.flatMap((device) =>
        device.points.map((point) => [topicOf(point), point.unit === undefined ? {} : { unit: point.unit }]),
      ),
    );
    const pollerContext = {
      topicOf,
      now: context.now ?? Date.now,
      timers: context.timers ?? PLATFORM_TIMERS,
      ...(options.random === undefined ? {} : { random: options.random }),
    };
    this.#pollers = devices.map((device) => new DevicePoller(device, pollerContext));
  }

  start(output: SourceOutput): void {
    if (this.#state !== 'ready') {
      throw new DmzError('AGENT_ERR_SOURCE_STATE', `source ${this.name} was started or stopped already`);
    }
    this.#state = 'running';
    for (const poller of this.#pollers) poller.start(output);
  }

  async stop(): Promise<void> {
    this.#state = 'stopped';
    await Promise.all(this.#pollers.map((poller) => poller.stop()));
  }

  stats(): ModbusSourceStats {
    let readings = 0;
    let batches = 0;
    let failedWrites = 0;
    let behind = 0;
    let lagMs = 0;
    let lastError: SourceError | undefined;
    for (const poller of this.#pollers) {
      const counters = poller.counters;
      const writes = poller.writes;
      readings += writes.written;
      batches += writes.written;
      failedWrites += writes.refused;
      behind += counters.behind;
      lagMs = Math.max(lagMs, counters.lagMs);
      const error = poller.lastError;
      if (error !== undefined && (lastError === undefined || error.time >= lastError.time)) lastError = error;
    }
    return {
      readings,
      batches,
      failedWrites,
      behind,
      lagMs,
      finished: false,
      lastError,
      devices: this.#pollers.map((poller) => poller.stats()),
    };
  }
}

/** Every topic fits under the agent's name (the config checks could not know the name). */
function checkTopics(config: ModbusConfig, context: SourceContext): void {
  const at = context.configPath ?? '';
  const prefix = config.prefix ?? config.name;
  const issues: ConfigIssue[] = [];
  config.devices.forEach((device, deviceIndex) => {
    device.points.forEach((point, pointIndex) => {
      const topic = `${context.agentName}/${prefix}/${point.name}`;
      try {
        validateTopic(topic);
      } catch (error) {
        issues.push({
          path: `${at}/devices/${deviceIndex}/points/${pointIndex}/name`,
          message: `topic ${topic} under agent ${context.agentName} is invalid: ${(error as Error).message}`,
        });
      }
    });
  });
  if (issues.length > 0) throw new ConfigError(issues, `source ${config.name}`);
}

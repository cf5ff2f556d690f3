/**
 * The `modbus` source: Modbus TCP devices polled for their registers, coils and inputs, each
 * device by a poller of its own (device-poller.ts), reported by exception with a heartbeat. This
 * is the backend the registry knows as `modbus`. Writes (holding registers and coils, once the OT
 * agent's checks have passed) go out on the device's own connection, in turn with its reads.
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
  type WriteOutcome,
  type WriteValue,
  type WriteValueType,
} from '../source.ts';
import { checkModbusConfig } from './checks.ts';
import { ModbusConfigSchema, type ModbusConfig } from './config.ts';
import { DevicePoller, type DeviceStats } from './device-poller.ts';
import { encodeWrite } from './register-encoding.ts';
import { modbusTopics, resolveDevices, type ModbusPoint } from './register-map.ts';

export const MODBUS_SOURCE: SourceBackend<ModbusConfig> = {
  schema: ModbusConfigSchema,
  check: checkModbusConfig,
  topics: modbusTopics,
  create: (config, context) => new ModbusSource(config, context),
  checkWrite: checkModbusWrite,
};

/** The exception codes of Modbus spec 7, as the spec names them. */
const EXCEPTIONS: Readonly<Record<number, string>> = {
  1: 'illegal function',
  2: 'illegal data address',
  3: 'illegal data value',
  4: 'server device failure',
  5: 'acknowledge',
  6: 'server device busy',
  10: 'gateway path unavailable',
  11: 'gateway target device failed to respond',
};

function exceptionName(code: number): string {
  const name = EXCEPTIONS[code];
  return name === undefined ? '' : ` (${name})`;
}

/** Modbus spec 4.3: holding registers and coils are the read-write tables. */
function checkModbusWrite(
  config: ModbusConfig,
  topic: string,
  valueType: WriteValueType,
): string | undefined {
  const point = resolveDevices(config)
    .flatMap((device) => device.points)
    .find((candidate) => candidate.topic === topic);
  if (point === undefined) return `is no point of source ${config.name}`;
  if (point.table === 'input' || point.table === 'discrete')
    return `is in the read-only ${point.table} table of source ${config.name}`;
  // Writing one bit would mean writing the whole register, and the other bits with it.
  if (point.table === 'holding' && point.type === 'bit')
    return 'is a bit inside a register, which cannot be written on its own';
  const takes: WriteValueType =
    point.table === 'coil' ? 'boolean' : point.type === 'string' ? 'string' : 'number';
  return takes === valueType
    ? undefined
    : `is a ${point.table === 'coil' ? 'coil' : point.type} point, which takes a ${takes}`;
}

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
  /** Each point by its full topic, with the poller of its device. */
  readonly #byTopic: ReadonlyMap<string, { readonly point: ModbusPoint; readonly poller: DevicePoller }>;
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
    this.#byTopic = new Map(
      this.#pollers.flatMap((poller) =>
        poller.device.points.map((point) => [topicOf(point), { point, poller }]),
      ),
    );
  }

  async write(topic: string, value: WriteValue, deadline: number): Promise<WriteOutcome> {
    const target = this.#byTopic.get(topic);
    if (target === undefined)
      return { ok: false, code: 'AGENT_ERR_WRITE_WRONG_TYPE', message: 'not a point of this source' };
    const encoded = encodeWrite(target.point, value);
    if (!encoded.ok) return encoded;
    const result = await target.poller.write(encoded.request, deadline);
    if (result.kind === 'written') return { ok: true };
    if (result.expired === true)
      return {
        ok: false,
        code: 'AGENT_ERR_WRITE_EXPIRED',
        message: 'the deadline passed while the write waited for the device; it was not sent',
      };
    const detail = `device ${target.poller.device.name}, ${target.point.table} ${target.point.address}`;
    return result.exception === undefined
      ? {
          ok: false,
          code: 'AGENT_ERR_WRITE_DEVICE_FAILED',
          message: `the write failed: ${result.reason}`,
          detail,
        }
      : {
          ok: false,
          code: 'AGENT_ERR_WRITE_DEVICE_EXCEPTION',
          message: `the device answered Modbus exception ${result.exception}${exceptionName(result.exception)}`,
          detail,
        };
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

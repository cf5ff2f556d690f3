/**
 * What a valid Modbus section resolves to: each device with its durations in milliseconds, each
 * point with its defaults filled in, the registers or bits it spans, and its topic. Everything
 * after config (the planner, the decoder, the poller) works from these, never from the raw section.
 */
import { parseDuration } from '../../../../pki/duration.ts';
import {
  REGISTER_TABLES,
  TYPE_REGISTERS,
  type ModbusConfig,
  type ModbusDeviceConfig,
  type ModbusPointConfig,
  type Order,
  type PointType,
  type Table,
} from './config.ts';

export type Deadband =
  | { readonly kind: 'absolute'; readonly amount: number }
  | { readonly kind: 'percent'; readonly amount: number };

export interface ModbusPoint {
  readonly name: string;
  /** The topic below the agent's namespace: `<prefix>/<name>`. */
  readonly topic: string;
  readonly table: Table;
  readonly address: number;
  /** Registers (register tables) or bits (bit tables) the point spans from `address`. */
  readonly count: number;
  readonly type: PointType;
  /** type bit in a register: which bit, 0 the least significant; 0 elsewhere. */
  readonly bit: number;
  readonly byteOrder: Order;
  readonly wordOrder: Order;
  readonly scale: number;
  readonly offset: number;
  readonly unit: string | undefined;
  readonly deadband: Deadband | undefined;
  readonly heartbeatMs: number;
}

export interface ModbusDevice {
  /** For status and errors: the configured name, else `host:port`. */
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly unitId: number;
  readonly localAddress: string | undefined;
  readonly pollIntervalMs: number;
  readonly timeoutMs: number;
  readonly maxRegisters: number;
  readonly maxBits: number;
  readonly maxGap: number;
  readonly maxBitGap: number;
  readonly points: readonly ModbusPoint[];
}

export function isRegisterTable(table: Table): boolean {
  return REGISTER_TABLES.includes(table);
}

/** The type of a point that does not say: a register reads as uint16, a coil or input as a bit. */
export function pointType(point: ModbusPointConfig): PointType {
  return point.type ?? (isRegisterTable(point.table) ? 'uint16' : 'bit');
}

/** Registers or bits the point spans (a string: its length; a bit table: one bit). */
export function pointCount(point: ModbusPointConfig): number {
  const type = pointType(point);
  if (!isRegisterTable(point.table)) return 1;
  return type === 'string' ? (point.length ?? 1) : TYPE_REGISTERS[type];
}

export function deviceName(device: ModbusDeviceConfig): string {
  return device.name ?? `${device.host}:${device.port}`;
}

/** The devices of a valid config, in order, each with its points. */
export function resolveDevices(config: ModbusConfig): ModbusDevice[] {
  const prefix = config.prefix ?? config.name;
  return config.devices.map((device) => {
    const heartbeatMs = milliseconds(device.heartbeat);
    return {
      name: deviceName(device),
      host: device.host,
      port: device.port,
      unitId: device.unitId,
      localAddress: device.localAddress,
      pollIntervalMs: milliseconds(device.pollInterval),
      timeoutMs: milliseconds(device.timeout),
      maxRegisters: device.maxRegisters,
      maxBits: device.maxBits,
      maxGap: device.maxGap,
      maxBitGap: device.maxBitGap,
      points: device.points.map((point) => resolvePoint(point, prefix, heartbeatMs)),
    };
  });
}

/** The topics of a valid config below the agent's namespace, in device and point order. */
export function modbusTopics(config: ModbusConfig): string[] {
  const prefix = config.prefix ?? config.name;
  return config.devices.flatMap((device) => device.points.map((point) => `${prefix}/${point.name}`));
}

function resolvePoint(point: ModbusPointConfig, prefix: string, deviceHeartbeatMs: number): ModbusPoint {
  return {
    name: point.name,
    topic: `${prefix}/${point.name}`,
    table: point.table,
    address: point.address,
    count: pointCount(point),
    type: pointType(point),
    bit: point.bit ?? 0,
    byteOrder: point.byteOrder ?? 'big',
    wordOrder: point.wordOrder ?? 'big',
    scale: point.scale ?? 1,
    offset: point.offset ?? 0,
    unit: point.unit,
    deadband: resolveDeadband(point),
    heartbeatMs: point.heartbeat === undefined ? deviceHeartbeatMs : milliseconds(point.heartbeat),
  };
}

function resolveDeadband(point: ModbusPointConfig): Deadband | undefined {
  const { deadband } = point;
  if (deadband?.absolute !== undefined) return { kind: 'absolute', amount: deadband.absolute };
  if (deadband?.percent !== undefined) return { kind: 'percent', amount: deadband.percent };
  return undefined;
}

/** A duration the checks accepted already. */
function milliseconds(text: string): number {
  return parseDuration(text, { milliseconds: true }) ?? 0;
}

/**
 * The Modbus TCP source's config section: its schema and its limits. The checks the schema cannot
 * make are in checks.ts; the points it resolves to (defaults filled in) in register-map.ts.
 *
 * Limits cite the Modbus Application Protocol Specification V1.1b3 (modbus.org, 2012), "MBAP"
 * for the Modbus TCP framing of the Messaging Implementation Guide V1.0b.
 */
import { Type, type Static } from '@sinclair/typebox';
import { MAX_TOPIC_BYTES, MAX_TOPIC_SEGMENT_BYTES } from '../../../../relay/protocol/limits.ts';
import { MAX_STRING_VALUE_BYTES } from '../../../points/point.ts';

/** The four Modbus data tables (spec 4.3): 16-bit registers and single bits, read-write or read-only. */
export const TABLES = ['holding', 'input', 'coil', 'discrete'] as const;
export type Table = (typeof TABLES)[number];
export const REGISTER_TABLES: readonly Table[] = ['holding', 'input'];

export const POINT_TYPES = [
  'int16',
  'uint16',
  'int32',
  'uint32',
  'float32',
  'float64',
  'bit',
  'string',
] as const;
export type PointType = (typeof POINT_TYPES)[number];

/** `big`: the most significant byte (within a register) or register (within a value) first. */
export const ORDERS = ['big', 'little'] as const;
export type Order = (typeof ORDERS)[number];

/** Registers one value of each fixed-width type spans; a string's `length` says its own. */
export const TYPE_REGISTERS: Readonly<Record<Exclude<PointType, 'string'>, number>> = {
  int16: 1,
  uint16: 1,
  int32: 2,
  uint32: 2,
  float32: 2,
  float64: 4,
  bit: 1,
};

/** Read Holding/Input Registers (spec 6.3, 6.4): quantity 1 to 125 (0x7D) per request. */
export const MAX_REGISTERS_PER_REQUEST = 125;
/** Read Coils/Discrete Inputs (spec 6.1, 6.2): quantity 1 to 2000 (0x7D0) per request. */
export const MAX_BITS_PER_REQUEST = 2000;
/** Protocol addresses are 16-bit (spec 4.4): 0 to 65535 in every table. */
export const MAX_ADDRESS = 0xffff;
/**
 * A string point spans at most 64 registers (128 bytes): each byte is one Latin-1 character, at
 * most two UTF-8 bytes, so the longest string still fits a point's string value (256 bytes).
 */
export const MAX_STRING_REGISTERS = MAX_STRING_VALUE_BYTES / 4;
/**
 * Devices in one source: each is a TCP connection and a poller of its own. 64 covers a line of
 * PLCs, meters and drives; a larger plant splits into several sources.
 */
export const MAX_DEVICES_PER_SOURCE = 64;
/**
 * Points in one source, over all its devices: each is a stream of the log (at most 65,536 per
 * agent), and 10,000 registers is a large Modbus plant (as for the simulator).
 */
export const MAX_POINTS_PER_SOURCE = 10_000;
/** A poll interval from 10 ms (a fast PLC on a quiet network) to a day (a monthly meter read). */
export const MIN_POLL_INTERVAL_MS = 10;
export const MAX_POLL_INTERVAL_MS = 86_400_000;
/** A request timeout from 10 ms to a minute: a device that takes longer is treated as gone. */
export const MIN_TIMEOUT_MS = 10;
export const MAX_TIMEOUT_MS = 60_000;
/** A heartbeat of at most a day: silence longer than that cannot be told from a dead source. */
export const MAX_HEARTBEAT_MS = 86_400_000;
/** A unit is a symbol (`degC`, `m3/h`, `kPa`), not a description (as for the simulator). */
export const MAX_UNIT_LENGTH = 32;
/** A DNS name is at most 253 characters (RFC 1035 2.3.4, without the trailing dot). */
export const MAX_HOST_LENGTH = 253;

/**
 * Defaults of a device that does not say. Gaps: reading up to 8 unneeded registers (16 bytes) costs
 * less than a second round trip (a request of 12 bytes, an answer's 9-byte header and a network
 * turn), and 64 unneeded bits are 8 bytes. A device that answers "illegal data address" for the
 * registers in a gap needs `maxGap: 0`.
 */
export const DEVICE_DEFAULTS = {
  port: 502,
  unitId: 1,
  pollInterval: '1s',
  timeout: '1s',
  maxGap: 8,
  maxBitGap: 64,
  heartbeat: '1m',
} as const;

const Duration = Type.String({ maxLength: 16 });
const Order = Type.Union(ORDERS.map((order) => Type.Literal(order)));

const DeadbandSchema = Type.Object(
  {
    /** Report a change larger than this, in engineering units (after scale and offset). */
    absolute: Type.Optional(Type.Number({ minimum: 0 })),
    /** Report a change larger than this percentage of the last reported value. */
    percent: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
  },
  { additionalProperties: false },
);

const PointSchema = Type.Object(
  {
    /** The topic below the source's prefix: one or more segments (`temp`, `press1/temp`). */
    name: Type.String({ minLength: 1, maxLength: MAX_TOPIC_BYTES }),
    table: Type.Union(TABLES.map((table) => Type.Literal(table))),
    /** The protocol address (0-based, as on the wire), not a 40001-style register number. */
    address: Type.Integer({ minimum: 0, maximum: MAX_ADDRESS }),
    /** Default: uint16 in a register table, bit in a bit table. */
    type: Type.Optional(Type.Union(POINT_TYPES.map((type) => Type.Literal(type)))),
    /** type bit in a register table: which bit, 0 the least significant. */
    bit: Type.Optional(Type.Integer({ minimum: 0, maximum: 15 })),
    /** type string: its length in registers (two characters each). */
    length: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_STRING_REGISTERS })),
    /** Byte order within each register; default big (the Modbus standard, spec 4.2). */
    byteOrder: Type.Optional(Order),
    /** Register order within a 32- or 64-bit value; default big (the high register first). */
    wordOrder: Type.Optional(Order),
    /** Engineering value = raw * scale + offset (numbers only). */
    scale: Type.Optional(Type.Number()),
    offset: Type.Optional(Type.Number()),
    /** Informational: kept in the source's topic metadata, never in the point encoding. */
    unit: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_UNIT_LENGTH })),
    /** Report by exception: a change within the deadband is not sent (numbers only). */
    deadband: Type.Optional(DeadbandSchema),
    /** The longest silence of this point (default: the device's heartbeat). */
    heartbeat: Type.Optional(Duration),
  },
  { additionalProperties: false },
);

const DeviceSchema = Type.Object(
  {
    /** The device's name in status and errors: one topic segment (default `host:port`). */
    name: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_TOPIC_SEGMENT_BYTES })),
    host: Type.String({ minLength: 1, maxLength: MAX_HOST_LENGTH }),
    port: Type.Integer({ minimum: 1, maximum: 65535, default: DEVICE_DEFAULTS.port }),
    /** The MBAP unit identifier: 0-255 (a gateway's serial slave, or 255/1 for a TCP device). */
    unitId: Type.Integer({ minimum: 0, maximum: 255, default: DEVICE_DEFAULTS.unitId }),
    /** The local IP address to connect from: the NIC that faces the devices on a dual-homed host. */
    localAddress: Type.Optional(Type.String({ minLength: 1, maxLength: 45 })),
    pollInterval: Type.String({ maxLength: 16, default: DEVICE_DEFAULTS.pollInterval }),
    /** How long one request (and one connect) may take before the device counts as not answering. */
    timeout: Type.String({ maxLength: 16, default: DEVICE_DEFAULTS.timeout }),
    maxRegisters: Type.Integer({
      minimum: 1,
      maximum: MAX_REGISTERS_PER_REQUEST,
      default: MAX_REGISTERS_PER_REQUEST,
    }),
    maxBits: Type.Integer({ minimum: 1, maximum: MAX_BITS_PER_REQUEST, default: MAX_BITS_PER_REQUEST }),
    /** Unneeded registers one request may read to cover two points (0: contiguous only). */
    maxGap: Type.Integer({
      minimum: 0,
      maximum: MAX_REGISTERS_PER_REQUEST - 2,
      default: DEVICE_DEFAULTS.maxGap,
    }),
    /** Unneeded coils or discrete inputs one request may read to cover two points. */
    maxBitGap: Type.Integer({
      minimum: 0,
      maximum: MAX_BITS_PER_REQUEST - 2,
      default: DEVICE_DEFAULTS.maxBitGap,
    }),
    /** The default longest silence of each point (a point's own `heartbeat` wins). */
    heartbeat: Type.String({ maxLength: 16, default: DEVICE_DEFAULTS.heartbeat }),
    points: Type.Array(PointSchema, { minItems: 1, maxItems: MAX_POINTS_PER_SOURCE }),
  },
  { additionalProperties: false },
);

export const ModbusConfigSchema = Type.Object(
  {
    type: Type.Literal('modbus'),
    /** The source's name in status and metrics: one topic segment. */
    name: Type.String({ minLength: 1, maxLength: MAX_TOPIC_SEGMENT_BYTES }),
    /** Topics are `<agent name>/<prefix>/<point name>`; default: the source's name. */
    prefix: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_TOPIC_BYTES })),
    devices: Type.Array(DeviceSchema, { minItems: 1, maxItems: MAX_DEVICES_PER_SOURCE }),
  },
  { additionalProperties: false },
);

export type ModbusConfig = Static<typeof ModbusConfigSchema>;
export type ModbusDeviceConfig = Static<typeof DeviceSchema>;
export type ModbusPointConfig = Static<typeof PointSchema>;

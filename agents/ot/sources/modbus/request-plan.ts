/**
 * The requests one poll cycle of a device sends, planned once at start: the points of each table,
 * in address order, coalesced into as few reads as the limits allow, the way SCADA drivers block
 * their reads. A request grows to cover the next point while the whole span stays within the
 * per-request maximum (125 registers or 2000 bits, spec 6.1-6.4, or the device's own lower limit)
 * and the unneeded registers or bits between two points stay within the device's maximum gap.
 * Points that overlap (several bits of one register, two views of the same registers) share it.
 */
import { TABLES, type Table } from './config.ts';
import { isRegisterTable, type ModbusDevice, type ModbusPoint } from './register-map.ts';

/** One point of a request: where its first register or bit is, counted from the request's start. */
export interface PlannedPoint {
  readonly point: ModbusPoint;
  readonly offset: number;
}

export interface PlannedRequest {
  readonly table: Table;
  readonly address: number;
  /** Registers or bits the request reads. */
  readonly count: number;
  /** In address order. */
  readonly points: readonly PlannedPoint[];
}

export type RequestLimits = Pick<ModbusDevice, 'maxRegisters' | 'maxBits' | 'maxGap' | 'maxBitGap'>;

/** The requests for `points`, table by table (holding, input, coil, discrete), each in address order. */
export function planRequests(points: readonly ModbusPoint[], limits: RequestLimits): PlannedRequest[] {
  const requests: PlannedRequest[] = [];
  for (const table of TABLES) {
    const ofTable = points
      .filter((point) => point.table === table)
      .sort((left, right) => left.address - right.address || left.count - right.count);
    const registers = isRegisterTable(table);
    const maxCount = registers ? limits.maxRegisters : limits.maxBits;
    const maxGap = registers ? limits.maxGap : limits.maxBitGap;
    let open: { address: number; end: number; points: ModbusPoint[] } | undefined;
    for (const point of ofTable) {
      const end = point.address + point.count;
      if (
        open !== undefined &&
        point.address - open.end <= maxGap &&
        Math.max(open.end, end) - open.address <= maxCount
      ) {
        open.end = Math.max(open.end, end);
        open.points.push(point);
        continue;
      }
      if (open !== undefined) requests.push(closeRequest(table, open));
      open = { address: point.address, end, points: [point] };
    }
    if (open !== undefined) requests.push(closeRequest(table, open));
  }
  return requests;
}

function closeRequest(
  table: Table,
  open: { address: number; end: number; points: readonly ModbusPoint[] },
): PlannedRequest {
  return {
    table,
    address: open.address,
    count: open.end - open.address,
    points: open.points.map((point) => ({ point, offset: point.address - open.address })),
  };
}

/**
 * One OPC UA write (Part 4 §5.10.4, the Write service) of a command's value to a node's Value
 * attribute, as a Variant of the node's own DataType (read first: Part 4 §5.10.2 with the
 * DataType attribute; a server refuses a Variant of another type with BadTypeMismatch). The
 * value must be one that DataType holds; a Bad status of the write is the device's refusal.
 */
import { AttributeIds, DataType, StatusCodes, Variant, type ClientSession } from 'node-opcua';
import type { WriteOutcome, WriteValue } from '../source.ts';

/** The integer types a number may be written to, with their ranges (Part 6 §5.1.2). */
const INTEGER_RANGES: ReadonlyMap<DataType, readonly [number, number]> = new Map([
  [DataType.SByte, [-0x80, 0x7f]],
  [DataType.Byte, [0, 0xff]],
  [DataType.Int16, [-0x8000, 0x7fff]],
  [DataType.UInt16, [0, 0xffff]],
  [DataType.Int32, [-0x8000_0000, 0x7fff_ffff]],
  [DataType.UInt32, [0, 0xffff_ffff]],
]);

/** Largest finite Float: a larger value would be written as Infinity. */
const MAX_FLOAT = 3.4028234663852886e38;

/**
 * Writes `value` to `nodeId` in `session`; never throws. `expired` is asked once the DataType is
 * read, just before the Write goes out: node-opcua holds a request made while the connection is
 * down and sends it once it is repaired, however late, so the DataType read may come back after
 * the command's deadline, and then the Write is not sent. Nor is it while the session is being
 * re-established. (A Write the server has not answered when the link breaks node-opcua may send
 * again after the repair: that window is the one request's round trip.)
 */
export async function writeNode(
  session: ClientSession,
  nodeId: string,
  value: WriteValue,
  expired: () => boolean,
): Promise<WriteOutcome> {
  let dataType: DataType;
  try {
    const read = await session.read({ nodeId, attributeId: AttributeIds.DataType });
    if (read.statusCode !== StatusCodes.Good) return exception(nodeId, read.statusCode.name);
    dataType = builtInType(read.value.value);
  } catch (error) {
    return failed(nodeId, error);
  }
  const problem = fits(dataType, value);
  if (problem !== undefined) return problem;
  if (expired()) {
    return {
      ok: false,
      code: 'AGENT_ERR_WRITE_EXPIRED',
      message: 'the deadline passed while the write waited for the server; it was not sent',
    };
  }
  // A Write issued now would be held until the connection is repaired, and sent whenever that is.
  if (session.isReconnecting) return failed(nodeId, new Error('the session is being re-established'));
  try {
    const status = await session.write({
      nodeId,
      attributeId: AttributeIds.Value,
      value: { value: new Variant({ dataType, value }) },
    });
    return status === StatusCodes.Good ? { ok: true } : exception(nodeId, status.name);
  } catch (error) {
    return failed(nodeId, error);
  }
}

/**
 * The DataType attribute is a NodeId; for the built-in types it is `ns=0;i=<DataType>` (Part 6
 * §5.1.2). A structure, an enumeration or another type of the server's is none of ours.
 */
function builtInType(nodeId: unknown): DataType {
  const id = nodeId as { namespace?: unknown; value?: unknown } | null;
  const name = id?.namespace === 0 && typeof id.value === 'number' ? DataType[id.value] : undefined;
  return typeof name === 'string' ? DataType[name as keyof typeof DataType] : DataType.Null;
}

function fits(dataType: DataType, value: WriteValue): WriteOutcome | undefined {
  if (dataType === DataType.Boolean) return typeof value === 'boolean' ? undefined : wrongType('Boolean');
  if (dataType === DataType.String) return typeof value === 'string' ? undefined : wrongType('String');
  if (dataType === DataType.Float || dataType === DataType.Double) {
    if (typeof value !== 'number') return wrongType(DataType[dataType]);
    return dataType === DataType.Float && Math.abs(value) > MAX_FLOAT
      ? outOfRange(`${value} does not fit a Float`)
      : undefined;
  }
  const range = INTEGER_RANGES.get(dataType);
  if (range === undefined) {
    return {
      ok: false,
      code: 'AGENT_ERR_WRITE_WRONG_TYPE',
      message: `the node's data type ${DataType[dataType] ?? dataType} is not one a command can write`,
    };
  }
  if (typeof value !== 'number') return wrongType(DataType[dataType]);
  if (!Number.isInteger(value) || value < range[0] || value > range[1])
    return outOfRange(`${value} is not a ${DataType[dataType]}`);
  return undefined;
}

function wrongType(type: string): WriteOutcome {
  return { ok: false, code: 'AGENT_ERR_WRITE_WRONG_TYPE', message: `the node holds a ${type}` };
}

function outOfRange(message: string): WriteOutcome {
  return { ok: false, code: 'AGENT_ERR_WRITE_OUT_OF_RANGE', message };
}

function exception(nodeId: string, status: string): WriteOutcome {
  return {
    ok: false,
    code: 'AGENT_ERR_WRITE_DEVICE_EXCEPTION',
    message: `the server answered ${status}`,
    detail: nodeId,
  };
}

function failed(nodeId: string, error: unknown): WriteOutcome {
  return {
    ok: false,
    code: 'AGENT_ERR_WRITE_DEVICE_FAILED',
    message: 'the write did not reach the server, or its answer did not come back',
    detail: `${nodeId}: ${error instanceof Error ? error.message : String(error)}`,
  };
}

/**
 * The monitored items of a subscription (OPC UA Part 4 §5.12): one CreateMonitoredItems request
 * per group of items that share sampling interval and queue size, each item's data changes and
 * refusals told to the source by the item's index in its config section.
 */
import './library-log.ts';
import {
  AttributeIds,
  ClientMonitoredItemGroup,
  readOperationLimits,
  resolveNodeId,
  TimestampsToReturn,
  type ClientSubscription,
  type DataValue,
} from 'node-opcua';
import type { MonitoredItemSpec } from './config.ts';
import { sessionError } from './link-errors.ts';

export interface ItemEvents {
  dataChange(index: number, dataValue: DataValue): void;
  /** The server will not monitor item `index`: the StatusCode name (`BadNodeIdUnknown`). */
  itemFailed(index: number, reason: string): void;
}

/**
 * Items in one CreateMonitoredItems request when the server states no limit of its own
 * (MaxMonitoredItemsPerCall 0, Part 5 §6.3.11): a request of about 50 KB, which every server takes.
 */
export const DEFAULT_ITEMS_PER_CALL = 1000;

/**
 * Items grouped by their monitoring parameters, each group in requests of at most the server's
 * MaxMonitoredItemsPerCall: a server refuses a bigger one whole (BadTooManyOperations).
 */
export async function monitorItems(
  subscription: ClientSubscription,
  items: readonly MonitoredItemSpec[],
  events: ItemEvents,
): Promise<void> {
  const limits = await readOperationLimits(subscription.session).catch(() => ({
    maxMonitoredItemsPerCall: 0,
  }));
  const perCall = limits.maxMonitoredItemsPerCall || DEFAULT_ITEMS_PER_CALL;
  const groups = new Map<string, { spec: MonitoredItemSpec; indexes: number[] }>();
  items.forEach((spec, index) => {
    try {
      resolveNodeId(spec.nodeId);
    } catch {
      events.itemFailed(index, 'BadNodeIdInvalid');
      return;
    }
    const key = `${spec.samplingIntervalMs}/${spec.queueSize}`;
    const group = groups.get(key) ?? { spec, indexes: [] };
    group.indexes.push(index);
    groups.set(key, group);
  });
  const calls = [...groups.values()].flatMap(({ spec, indexes }) =>
    Array.from({ length: Math.ceil(indexes.length / perCall) }, (_, call) => ({
      spec,
      indexes: indexes.slice(call * perCall, (call + 1) * perCall),
    })),
  );
  await Promise.all(
    calls.map(({ spec, indexes }) => monitorGroup(subscription, items, spec, indexes, events)),
  );
}

async function monitorGroup(
  subscription: ClientSubscription,
  items: readonly MonitoredItemSpec[],
  spec: MonitoredItemSpec,
  indexes: number[],
  events: ItemEvents,
): Promise<void> {
  const group = ClientMonitoredItemGroup.create(
    subscription,
    indexes.map((index) => ({
      nodeId: items[index]?.nodeId ?? '',
      attributeId: AttributeIds.Value,
    })),
    { samplingInterval: spec.samplingIntervalMs, queueSize: spec.queueSize, discardOldest: true },
    TimestampsToReturn.Both,
  );
  group.on('changed', (_item, dataValue, position) => {
    const index = indexes[position];
    if (index !== undefined) events.dataChange(index, dataValue);
  });
  await new Promise<void>((resolve, reject) => {
    group.once('initialized', resolve);
    group.once('terminated', (error: Error | undefined) =>
      reject(sessionError(`cannot monitor items: ${error?.message ?? 'terminated'}`)),
    );
  });
  // Items the server refused have a bad StatusCode of their own; the others report by themselves.
  const reportRefused = () =>
    group.monitoredItems.forEach((item, position) => {
      const index = indexes[position];
      if (index !== undefined && !item.statusCode.isGood()) events.itemFailed(index, item.statusCode.name);
    });
  reportRefused();
  // Made again after a server restart (node-opcua does it): an item the server now refuses says so.
  subscription.on('subscriptionId_changed', reportRefused);
}

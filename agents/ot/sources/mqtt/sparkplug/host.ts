/**
 * The Sparkplug B host side of an MQTT source (Eclipse Sparkplug 3.0, host application behaviour,
 * without the primary host's STATE): per edge node its session (NBIRTH to NDEATH), the aliases its
 * births declared, and the `seq` of its last message. Births and data become readings, metrics by
 * name; a death makes the node's (or the device's) points bad, reason "offline". A gap in `seq`
 * (0-255, wrapping), data from a node or device without a birth, an alias no birth declared or a
 * payload that does not decode mean this host's picture is incomplete: it asks the edge node to
 * rebirth (an NCMD with `Node Control/Rebirth` = true), at most once per REBIRTH_RETRY_MS.
 */
import { get as getSparkplugCodec } from 'sparkplug-payload';
import type { UMetric, UPayload } from 'sparkplug-payload/lib/sparkplugbpayload.js';
import type { PointReading } from '../../../../points/point.ts';
import type { DropReason } from '../stats.ts';
import type { TopicTable } from '../topic-table.ts';
import {
  aliasesOf,
  aliasName,
  bdSeqOf,
  isControlMetric,
  metricValue,
  sequenceOf,
  wholeNumberOf,
} from './metrics.ts';
import {
  metricTopic,
  REBIRTH_METRIC,
  rebirthCommandTopic,
  SPARKPLUG_NAMESPACE,
  type SparkplugTopic,
} from './topics.ts';

/**
 * An edge node answers a rebirth request with its NBIRTH within a publish round trip; asking again
 * sooner than this would pile births, each carrying every metric, onto the broker.
 */
export const REBIRTH_RETRY_MS = 5_000;
/** Edge nodes, and devices per edge node, one source follows: a group, not a fleet. */
export const MAX_EDGE_NODES = 1024;
export const MAX_DEVICES_PER_NODE = 1024;
/**
 * An NBIRTH carries every metric of a node with its properties: a large one is hundreds of
 * kilobytes. A payload above this is not decoded at all.
 */
export const MAX_SPARKPLUG_PAYLOAD_BYTES = 4 * 1024 * 1024;

const codec = getSparkplugCodec(SPARKPLUG_NAMESPACE);

export interface SparkplugHostEvents {
  reading(topic: string, reading: PointReading): void;
  dropped(reason: DropReason, count?: number): void;
  /** Publishes an NCMD; false if it could not be sent now (not connected). */
  publish(topic: string, payload: Uint8Array): boolean;
}

export interface SparkplugStats {
  readonly births: number;
  readonly deaths: number;
  /** NDEATHs whose bdSeq was not the current session's: a late will, ignored. */
  readonly staleDeaths: number;
  readonly seqGaps: number;
  readonly rebirthRequests: number;
  readonly undecodable: number;
}

interface Scope {
  alive: boolean;
  aliases: Map<string, string>;
  readonly topics: Set<string>;
}

interface EdgeNode extends Scope {
  seq: number | undefined;
  bdSeq: number | undefined;
  rebirthRequestedAt: number | undefined;
  readonly devices: Map<string, Scope>;
}

export class SparkplugHost {
  readonly #group: string;
  readonly #table: TopicTable;
  readonly #events: SparkplugHostEvents;
  readonly #now: () => number;
  readonly #nodes = new Map<string, EdgeNode>();
  #stats = { births: 0, deaths: 0, staleDeaths: 0, seqGaps: 0, rebirthRequests: 0, undecodable: 0 };

  constructor(group: string, table: TopicTable, events: SparkplugHostEvents, now: () => number) {
    if (codec === null) throw new Error(`sparkplug-payload does not know ${SPARKPLUG_NAMESPACE}`);
    this.#group = group;
    this.#table = table;
    this.#events = events;
    this.#now = now;
  }

  stats(): SparkplugStats {
    return { ...this.#stats };
  }

  handle(topic: SparkplugTopic, bytes: Uint8Array): void {
    const node = this.#node(topic.edgeNode);
    if (node === undefined) return;
    const payload = this.#decode(bytes);
    if (payload === undefined) {
      node.seq = undefined;
      if (topic.type !== 'NDEATH') this.#requestRebirth(topic.edgeNode, node);
      return;
    }
    switch (topic.type) {
      case 'NBIRTH':
        this.#nodeBirth(topic.edgeNode, node, payload);
        return;
      case 'NDEATH':
        this.#nodeDeath(node, payload);
        return;
      case 'NDATA':
        if (!this.#inSession(topic.edgeNode, node, payload)) return;
        this.#emitMetrics(topic.edgeNode, undefined, node, payload);
        return;
      case 'DBIRTH':
      case 'DDEATH':
      case 'DDATA':
        this.#deviceMessage(topic.type, topic.edgeNode, topic.device ?? '', node, payload);
        return;
    }
  }

  #nodeBirth(edgeNode: string, node: EdgeNode, payload: UPayload): void {
    this.#stats.births++;
    node.alive = true;
    node.seq = sequenceOf(payload.seq);
    node.bdSeq = bdSeqOf(payload);
    node.rebirthRequestedAt = undefined;
    node.aliases = aliasesOf(payload);
    // A new session: every device must be born again in it.
    for (const device of node.devices.values()) {
      device.alive = false;
      device.aliases = new Map();
    }
    this.#emitMetrics(edgeNode, undefined, node, payload);
  }

  #nodeDeath(node: EdgeNode, payload: UPayload): void {
    const bdSeq = bdSeqOf(payload);
    // The will of an earlier session can arrive after the next NBIRTH: it does not kill this one.
    if (bdSeq !== undefined && node.bdSeq !== undefined && bdSeq !== node.bdSeq) {
      this.#stats.staleDeaths++;
      return;
    }
    this.#stats.deaths++;
    node.alive = false;
    node.seq = undefined;
    // An NDEATH is the broker's will, set when the node connected: its timestamp is that old.
    const time = this.#now();
    this.#markOffline(node, time);
    for (const device of node.devices.values()) {
      device.alive = false;
      this.#markOffline(device, time);
    }
  }

  #deviceMessage(
    type: 'DBIRTH' | 'DDEATH' | 'DDATA',
    edgeNode: string,
    name: string,
    node: EdgeNode,
    payload: UPayload,
  ): void {
    if (!this.#inSession(edgeNode, node, payload)) return;
    let device = node.devices.get(name);
    if (device === undefined) {
      if (node.devices.size >= MAX_DEVICES_PER_NODE) {
        this.#events.dropped('too-many-devices');
        return;
      }
      device = { alive: false, aliases: new Map(), topics: new Set() };
      node.devices.set(name, device);
    }
    switch (type) {
      case 'DBIRTH':
        device.alive = true;
        device.aliases = aliasesOf(payload);
        this.#emitMetrics(edgeNode, name, device, payload);
        return;
      case 'DDEATH':
        device.alive = false;
        this.#markOffline(device, wholeNumberOf(payload.timestamp) ?? this.#now());
        return;
      case 'DDATA':
        if (!device.alive) {
          this.#events.dropped('not-born', payload.metrics?.length ?? 0);
          this.#requestRebirth(edgeNode, node);
          return;
        }
        this.#emitMetrics(edgeNode, name, device, payload);
        return;
    }
  }

  /**
   * True if a message of the node's session may be used: the node is born, and its `seq` follows
   * the last one (a gap still lets this message through, its aliases are known, but asks for a
   * rebirth to fill the picture).
   */
  #inSession(edgeNode: string, node: EdgeNode, payload: UPayload): boolean {
    if (!node.alive) {
      this.#events.dropped('not-born', payload.metrics?.length ?? 0);
      this.#requestRebirth(edgeNode, node);
      return false;
    }
    const seq = sequenceOf(payload.seq);
    const expected = node.seq === undefined ? undefined : (node.seq + 1) % 256;
    node.seq = seq;
    if (seq === undefined || seq !== expected) {
      this.#stats.seqGaps++;
      this.#requestRebirth(edgeNode, node);
    }
    return true;
  }

  #emitMetrics(edgeNode: string, device: string | undefined, scope: Scope, payload: UPayload): void {
    const payloadTime = wholeNumberOf(payload.timestamp);
    let unknown = false;
    for (const metric of payload.metrics ?? []) {
      const name = metric.name ?? aliasName(scope.aliases, metric);
      if (name === undefined) {
        this.#events.dropped('unknown-metric');
        unknown = true;
        continue;
      }
      if (isControlMetric(name)) continue;
      this.#emitMetric(edgeNode, device, scope, name, metric, payloadTime);
    }
    if (unknown) this.#requestRebirth(edgeNode, this.#nodes.get(edgeNode));
  }

  #emitMetric(
    edgeNode: string,
    device: string | undefined,
    scope: Scope,
    name: string,
    metric: UMetric,
    payloadTime: number | undefined,
  ): void {
    const converted = metricValue(metric);
    if (converted.kind === 'unsupported') {
      this.#events.dropped('unsupported-metric');
      return;
    }
    const owner = JSON.stringify([edgeNode, device ?? null, name]);
    const claim = this.#table.claim(metricTopic(edgeNode, device, name), owner);
    if ('refused' in claim) {
      this.#events.dropped(claim.refused);
      return;
    }
    const { topic } = claim;
    scope.topics.add(topic);
    const sourceTime = wholeNumberOf(metric.timestamp) ?? payloadTime ?? this.#now();
    if (converted.kind === 'value') {
      const reading: PointReading =
        converted.problem === undefined
          ? { value: converted.value, quality: 'good', sourceTime }
          : { value: converted.value, quality: 'uncertain', reason: converted.problem, sourceTime };
      this.#events.reading(topic, reading);
      return;
    }
    const reason = converted.kind === 'null' ? 'null value' : converted.reason;
    const value = this.#table.lastValue(topic) ?? converted.zero;
    this.#events.reading(topic, { value, quality: 'bad', reason, sourceTime });
  }

  #markOffline(scope: Scope, sourceTime: number): void {
    for (const topic of scope.topics) {
      const value = this.#table.lastValue(topic);
      if (value !== undefined)
        this.#events.reading(topic, { value, quality: 'bad', reason: 'offline', sourceTime });
    }
  }

  #requestRebirth(edgeNode: string, node: EdgeNode | undefined): void {
    if (node === undefined) return;
    const now = this.#now();
    if (node.rebirthRequestedAt !== undefined && now - node.rebirthRequestedAt < REBIRTH_RETRY_MS) return;
    const payload = codec?.encodePayload({
      timestamp: now,
      metrics: [{ name: REBIRTH_METRIC, type: 'Boolean', value: true }],
    });
    if (payload === undefined || !this.#events.publish(rebirthCommandTopic(this.#group, edgeNode), payload))
      return;
    node.rebirthRequestedAt = now;
    this.#stats.rebirthRequests++;
  }

  #node(edgeNode: string): EdgeNode | undefined {
    let node = this.#nodes.get(edgeNode);
    if (node === undefined) {
      if (this.#nodes.size >= MAX_EDGE_NODES) {
        this.#events.dropped('too-many-devices');
        return undefined;
      }
      node = {
        alive: false,
        aliases: new Map(),
        topics: new Set(),
        seq: undefined,
        bdSeq: undefined,
        rebirthRequestedAt: undefined,
        devices: new Map(),
      };
      this.#nodes.set(edgeNode, node);
    }
    return node;
  }

  #decode(bytes: Uint8Array): UPayload | undefined {
    if (bytes.byteLength > MAX_SPARKPLUG_PAYLOAD_BYTES || codec === null) {
      this.#stats.undecodable++;
      this.#events.dropped('undecodable');
      return undefined;
    }
    try {
      return codec.decodePayload(bytes);
    } catch {
      this.#stats.undecodable++;
      this.#events.dropped('undecodable');
      return undefined;
    }
  }
}

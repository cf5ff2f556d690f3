/**
 * The bridge as a Sparkplug B edge node (Eclipse Sparkplug 3.0): the node is the bridge
 * (`spBv1.0/<group>/NBIRTH/<edge node>`), each OT agent one of its devices
 * (`.../DBIRTH/<edge node>/<OT agent>`), each point topic a metric named by the rest of its topic
 * (`press-7/line1/temp` is metric `line1/temp` of device `press-7`).
 *
 * - Every connection attempt has its bdSeq (0-255, one more each attempt, kept across restarts):
 *   the attempt's will is an NDEATH with it, and the NBIRTH after its CONNACK carries the same one.
 * - The NBIRTH has `seq` 0; every later message of the session the next `seq`, wrapping at 256.
 * - A device is born (DBIRTH, every metric it has with its last value, name and alias) after each
 *   NBIRTH if it is online and has metrics, else before its first data; and born again when a
 *   metric appears or changes type (a metric cannot be added in DDATA). DDATA carries aliases
 *   only. An OT agent whose session ends gets a DDEATH.
 * - An NCMD `Node Control/Rebirth` = true is answered with an NBIRTH and every DBIRTH.
 * - A point's quality, when it is not good (or was not, last time), is the metric's `Quality`
 *   property, OPC DA codes as Ignition reads them: 192 good, 64 uncertain, 0 bad.
 *
 * Deliberately not as the specification says: births and data go out at QoS 1, not QoS 0, so that
 * the cursor can wait for PUBACKs and a broker outage loses nothing; a host takes QoS 1 the same.
 * Gaps and resets have no Sparkplug form (a metric has no sequence of its own): they move the
 * cursor and are counted, nothing is published.
 */
import { get as getSparkplugCodec } from 'sparkplug-payload';
import type { TypeStr, UMetric, UPayload } from 'sparkplug-payload/lib/sparkplugbpayload.js';
import type { Point, PointValue, Quality } from '../../../points/point.ts';
import {
  BDSEQ_METRIC,
  REBIRTH_METRIC,
  rebirthCommandTopic,
  SPARKPLUG_NAMESPACE,
} from '../../../ot/sources/mqtt/sparkplug/topics.ts';
import type { SinkEntry } from '../sink.ts';
import type { BridgeFormat, BridgeMessage, PeerStates } from './bridge-format.ts';

const codec = knownCodec();
/** Sparkplug's seq and bdSeq run 0-255 and wrap (Sparkplug 3.0, "Sequence Number"). */
const SEQUENCE_MODULUS = 256;
/** Metrics per DDATA: a large write goes out as several messages of a few tens of KiB. */
export const MAX_METRICS_PER_DATA = 512;
/** OPC DA quality codes, the convention Ignition's MQTT Engine reads from a `Quality` property. */
export const QUALITY_CODES: Readonly<Record<Quality, number>> = { good: 192, uncertain: 64, bad: 0 };

interface Metric {
  readonly name: string;
  readonly alias: number;
  type: TypeStr;
  last: Point | undefined;
}

interface Device {
  readonly metrics: Map<string, Metric>;
  born: boolean;
}

export interface SparkplugFormatOptions {
  readonly group: string;
  readonly edgeNode: string;
  /** The bdSeq of the last attempt before this process (from the cursor file), if any. */
  readonly lastBdSeq: number | undefined;
  readonly now: () => number;
}

export interface SparkplugFormatStats {
  readonly bdSeq: number | undefined;
  readonly births: number;
  readonly deviceBirths: number;
  readonly rebirthRequests: number;
  readonly gapsAndResetsNotPublished: number;
}

export class SparkplugFormat implements BridgeFormat {
  readonly #options: SparkplugFormatOptions;
  readonly #devices = new Map<string, Device>();
  #bdSeq: number | undefined;
  #seq = 0;
  #nextAlias = 1;
  #births = 0;
  #deviceBirths = 0;
  #rebirthRequests = 0;
  #gaps = 0;

  constructor(options: SparkplugFormatOptions) {
    this.#options = options;
    this.#bdSeq = options.lastBdSeq;
  }

  get bdSeq(): number | undefined {
    return this.#bdSeq;
  }

  will(): BridgeMessage {
    this.#bdSeq = this.#bdSeq === undefined ? 0 : (this.#bdSeq + 1) % SEQUENCE_MODULUS;
    return this.#death();
  }

  connected(peers: PeerStates): BridgeMessage[] {
    this.#seq = 0;
    for (const device of this.#devices.values()) device.born = false;
    this.#births++;
    const birth = this.#message('NBIRTH', undefined, [
      { name: BDSEQ_METRIC, type: 'Int64', value: this.#bdSeq ?? 0 },
      { name: REBIRTH_METRIC, type: 'Boolean', value: false },
    ]);
    const devices = [...this.#devices]
      .filter(([name, device]) => peers.get(name) === true && device.metrics.size > 0)
      .map(([name, device]) => this.#deviceBirth(name, device, new Map()));
    return [birth, ...devices];
  }

  disconnected(): void {
    for (const device of this.#devices.values()) device.born = false;
  }

  peersChanged(peers: PeerStates): BridgeMessage[] {
    const messages: BridgeMessage[] = [];
    for (const [name, device] of this.#devices) {
      if (!device.born || peers.get(name) !== false) continue;
      device.born = false;
      messages.push(this.#message('DDEATH', name, []));
    }
    return messages;
  }

  render(entries: readonly SinkEntry[]): BridgeMessage[] {
    const messages: BridgeMessage[] = [];
    let start = 0;
    // Runs of points of one device, in order: each run is a DBIRTH when needed, then its DDATA.
    while (start < entries.length) {
      const first = entries[start] as SinkEntry;
      if (first.kind !== 'point') {
        this.#gaps++;
        start++;
        continue;
      }
      const deviceName = deviceOf(first.point.topic);
      let end = start;
      const points: Point[] = [];
      for (; end < entries.length; end++) {
        const entry = entries[end] as SinkEntry;
        if (entry.kind !== 'point' || deviceOf(entry.point.topic) !== deviceName) break;
        points.push(entry.point);
      }
      start = end;
      messages.push(...this.#renderDevice(deviceName, points));
    }
    return messages;
  }

  command(topic: string, payload: Buffer, peers: PeerStates): BridgeMessage[] {
    if (topic !== this.#commandTopic()) return [];
    let decoded: UPayload;
    try {
      decoded = codec.decodePayload(payload);
    } catch {
      return [];
    }
    const rebirth = decoded.metrics?.some(
      (metric) => metric.name === REBIRTH_METRIC && metric.value === true,
    );
    if (rebirth !== true) return [];
    this.#rebirthRequests++;
    return this.connected(peers);
  }

  closing(): BridgeMessage[] {
    return [this.#death()];
  }

  subscriptions(): readonly string[] {
    return [this.#commandTopic()];
  }

  stats(): SparkplugFormatStats {
    return {
      bdSeq: this.#bdSeq,
      births: this.#births,
      deviceBirths: this.#deviceBirths,
      rebirthRequests: this.#rebirthRequests,
      gapsAndResetsNotPublished: this.#gaps,
    };
  }

  #renderDevice(deviceName: string, points: readonly Point[]): BridgeMessage[] {
    let device = this.#devices.get(deviceName);
    if (device === undefined) {
      device = { metrics: new Map(), born: false };
      this.#devices.set(deviceName, device);
    }
    // A metric that is new, or of another type now, needs a birth before any data names it.
    const firstValues = new Map<string, Point>();
    for (const point of points) {
      const name = metricName(point.topic);
      const type = metricType(point.value);
      const metric = device.metrics.get(name);
      if (metric !== undefined && metric.type === type) continue;
      if (metric === undefined)
        device.metrics.set(name, { name, alias: this.#nextAlias++, type, last: undefined });
      else metric.type = type;
      if (!firstValues.has(name)) firstValues.set(name, point);
      device.born = false;
    }
    const messages: BridgeMessage[] = [];
    if (!device.born) messages.push(this.#deviceBirth(deviceName, device, firstValues));
    for (let offset = 0; offset < points.length; offset += MAX_METRICS_PER_DATA) {
      const metrics = points.slice(offset, offset + MAX_METRICS_PER_DATA).map((point) => {
        const metric = device.metrics.get(metricName(point.topic)) as Metric;
        const wasGood = metric.last === undefined || metric.last.quality === 'good';
        metric.last = point;
        return dataMetric(metric, point, !wasGood);
      });
      messages.push(this.#message('DDATA', deviceName, metrics));
    }
    return messages;
  }

  #deviceBirth(name: string, device: Device, firstValues: ReadonlyMap<string, Point>): BridgeMessage {
    device.born = true;
    this.#deviceBirths++;
    const metrics = [...device.metrics.values()].map((metric) => {
      const point = metric.last ?? firstValues.get(metric.name);
      return {
        ...(point === undefined ? nullMetric(metric) : dataMetric(metric, point, true)),
        name: metric.name,
      };
    });
    return this.#message('DBIRTH', name, metrics);
  }

  #death(): BridgeMessage {
    const payload: UPayload = {
      timestamp: this.#options.now(),
      metrics: [{ name: BDSEQ_METRIC, type: 'Int64', value: this.#bdSeq ?? 0 }],
    };
    return {
      topic: this.#topic('NDEATH', undefined),
      payload: Buffer.from(codec.encodePayload(payload)),
      retain: false,
    };
  }

  #message(
    type: 'NBIRTH' | 'DBIRTH' | 'DDATA' | 'DDEATH',
    device: string | undefined,
    metrics: UMetric[],
  ): BridgeMessage {
    const seq = this.#seq;
    this.#seq = (seq + 1) % SEQUENCE_MODULUS;
    const payload: UPayload = { timestamp: this.#options.now(), seq, metrics };
    return {
      topic: this.#topic(type, device),
      payload: Buffer.from(codec.encodePayload(payload)),
      retain: false,
    };
  }

  #topic(type: string, device: string | undefined): string {
    const { group, edgeNode } = this.#options;
    return `${SPARKPLUG_NAMESPACE}/${group}/${type}/${edgeNode}${device === undefined ? '' : `/${device}`}`;
  }

  #commandTopic(): string {
    return rebirthCommandTopic(this.#options.group, this.#options.edgeNode);
  }
}

function knownCodec(): NonNullable<ReturnType<typeof getSparkplugCodec>> {
  const known = getSparkplugCodec(SPARKPLUG_NAMESPACE);
  if (known === null) throw new Error(`sparkplug-payload does not know ${SPARKPLUG_NAMESPACE}`);
  return known;
}

/** An OT topic is `<agent>/<rest>` (the relay's namespace rule): the agent is the device. */
function deviceOf(topic: string): string {
  const slash = topic.indexOf('/');
  return slash < 0 ? topic : topic.slice(0, slash);
}

function metricName(topic: string): string {
  const slash = topic.indexOf('/');
  return slash < 0 ? topic : topic.slice(slash + 1);
}

/** Numbers are Double (exact to 2^53, as a point holds them); arrays go as their JSON text. */
function metricType(value: PointValue): TypeStr {
  if (typeof value === 'boolean') return 'Boolean';
  if (typeof value === 'number') return 'Double';
  return 'String';
}

function metricValue(value: PointValue): number | boolean | string {
  return typeof value === 'object' ? JSON.stringify(value) : value;
}

function dataMetric(metric: Metric, point: Point, withQuality: boolean): UMetric {
  const quality = withQuality || point.quality !== 'good';
  return {
    alias: metric.alias,
    type: metric.type,
    // A value of another type than the metric's (its type changed within this run) is its text.
    value:
      metricType(point.value) === metric.type ? metricValue(point.value) : String(metricValue(point.value)),
    timestamp: point.sourceTime,
    ...(quality ? { properties: { Quality: { type: 'Int32', value: QUALITY_CODES[point.quality] } } } : {}),
  };
}

function nullMetric(metric: Metric): UMetric {
  return { alias: metric.alias, type: metric.type, value: null };
}

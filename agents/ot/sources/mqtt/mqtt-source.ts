/**
 * The `mqtt` source: subscribes to topics of a broker on the OT network and turns messages into
 * readings, by mapping (a topic filter, a point topic template, a value extractor) or as Sparkplug
 * B. A broker pushes at its own pace and the log takes readings at its own: readings wait in a
 * bounded buffer that the writer drains (buffered-writer.ts).
 *
 * Backpressure: when the buffer is full, the client first stops reading from the broker (TCP pushes
 * back on the broker, which holds or drops by its own limits). A pause lasts at most a quarter of
 * the keep alive: mqtt.js reads no PINGRESP while paused and would time its connection out at 1.5
 * keep alives (MQTT.js issue 1935). A log still stalled then is more than a hiccup: the source reads
 * on and each new reading pushes out the oldest waiting one, counted as `buffer-full`, until a
 * write makes room. Memory never grows past the configured buffer.
 */
import { DmzError } from '../../../../relay/protocol/errors.ts';
import { parseDuration } from '../../../../pki/duration.ts';
import { encodePoint, MAX_REASON_BYTES, type PointReading, type PointValue } from '../../../points/point.ts';
import {
  describeSourceError,
  PLATFORM_TIMERS,
  type PointSource,
  type SourceBackend,
  type SourceContext,
  type SourceError,
  type SourceOutput,
  type SourceTimers,
  type TopicMetadata,
} from '../source.ts';
import { BrokerConnection } from './broker-connection.ts';
import { sourceBrokerSettings } from './broker-settings.ts';
import { BufferedWriter } from './buffered-writer.ts';
import { checkMqttConfig } from './checks.ts';
import {
  MAX_TOPICS_PER_SOURCE,
  MqttConfigSchema,
  mqttTopics,
  topicPrefix,
  type MqttConfig,
} from './config.ts';
import {
  claimKnownTopics,
  compileMappings,
  findMapping,
  mappingOwner,
  type CompiledMapping,
} from './mappings.ts';
import { extractValue, zeroValue } from './payload-values.ts';
import { SparkplugHost } from './sparkplug/host.ts';
import { parseSparkplugTopic } from './sparkplug/topics.ts';
import { emptyDropCounts, type DropReason, type MqttSourceStats } from './stats.ts';
import { TopicTable } from './topic-table.ts';

/** The client stays paused on a full buffer for at most this share of the keep alive. */
export const PAUSE_SHARE_OF_KEEPALIVE = 1 / 4;
/** The quality reason of every point when the broker connection is lost. */
export const BROKER_LOST_REASON = 'broker connection lost';

export const MQTT_SOURCE: SourceBackend<MqttConfig> = {
  schema: MqttConfigSchema,
  check: checkMqttConfig,
  topics: mqttTopics,
  create: (config, context) => new MqttSource(config, context),
};

interface HeldMessage {
  readonly topic: string;
  readonly payload: Buffer;
  readonly resume: () => void;
  readonly timer: unknown;
}

class MqttSource implements PointSource {
  readonly type = 'mqtt';
  readonly name: string;
  readonly #table: TopicTable;
  readonly #mappings: CompiledMapping[];
  readonly #sparkplugGroup: string | undefined;
  readonly #sparkplug: SparkplugHost | undefined;
  readonly #writer: BufferedWriter;
  readonly #connection: BrokerConnection;
  readonly #pauseLimitMs: number;
  readonly #now: () => number;
  readonly #timers: SourceTimers;
  #state: 'ready' | 'running' | 'stopped' = 'ready';
  #held: HeldMessage | undefined;
  /** A pause ran out with the buffer still full: new readings push out the oldest until there is room. */
  #dropping = false;
  #messages = 0;
  #badPayloads = 0;
  #pauses = 0;
  #refusedFilters: readonly string[] = [];
  readonly #dropped = emptyDropCounts();
  #lastError: SourceError | undefined;

  constructor(config: MqttConfig, context: SourceContext) {
    this.name = config.name;
    this.#now = context.now ?? Date.now;
    this.#timers = context.timers ?? PLATFORM_TIMERS;
    const namespace = `${context.agentName}/${topicPrefix(config)}`;
    this.#table = new TopicTable(namespace, MAX_TOPICS_PER_SOURCE);
    this.#mappings = compileMappings(config.mappings);
    claimKnownTopics(this.#table, config, this.#mappings, context);
    this.#writer = new BufferedWriter(config.buffer, this.#timers, this.#now, {
      room: () => this.#onRoom(),
      refused: (error) => {
        this.#lastError = describeSourceError(error, this.#now());
      },
    });
    const keepaliveMs = parseDuration(config.broker.keepalive, { milliseconds: true }) ?? 0;
    this.#pauseLimitMs = keepaliveMs * PAUSE_SHARE_OF_KEEPALIVE;
    this.#sparkplugGroup = config.sparkplug?.group;
    this.#sparkplug =
      config.sparkplug === undefined
        ? undefined
        : new SparkplugHost(
            config.sparkplug.group,
            this.#table,
            {
              reading: (topic, reading) => this.#push(topic, reading),
              dropped: (reason, count) => this.#drop(reason, count),
              publish: (topic, payload) => this.#connection.publish(topic, payload),
            },
            this.#now,
          );
    this.#connection = new BrokerConnection(
      sourceBrokerSettings(config, context.agentName),
      {
        message: (topic, payload, resume) => this.#onMessage(topic, payload, resume),
        subscribed: (refused) => this.#onSubscribed(refused),
        disconnected: (wasConnected) => {
          if (wasConnected) this.#markAll(BROKER_LOST_REASON);
        },
        problem: (message, cause) => this.#report(message, cause),
      },
      this.#timers,
      this.#now,
    );
  }

  get topics(): readonly string[] {
    return this.#table.topics;
  }

  get topicMetadata(): ReadonlyMap<string, TopicMetadata> {
    return this.#table.metadata;
  }

  start(output: SourceOutput): void {
    if (this.#state !== 'ready') {
      throw new DmzError('AGENT_ERR_SOURCE_STATE', `source ${this.name} was started or stopped already`);
    }
    this.#state = 'running';
    this.#writer.start(output);
    this.#connection.start();
  }

  /**
   * Disconnects, writes what waits (one round; a round the log refuses now is dropped, counted as
   * `stopped`, like anything beyond it) and resolves once no write is in flight.
   */
  async stop(): Promise<void> {
    if (this.#state === 'stopped') return;
    const wasRunning = this.#state === 'running';
    this.#state = 'stopped';
    this.#connection.stop();
    if (this.#held !== undefined) this.#timers.clearTimeout(this.#held.timer);
    this.#held = undefined;
    if (wasRunning) this.#drop('stopped', await this.#writer.stop());
  }

  stats(): MqttSourceStats {
    const connection = this.#connection.stats();
    return {
      ...this.#writer.stats(),
      finished: false,
      lastError: this.#lastError,
      connected: connection.connected,
      connectionAttempts: connection.attempts,
      connections: connection.connections,
      messages: this.#messages,
      badPayloads: this.#badPayloads,
      buffered: this.#writer.size,
      pauses: this.#pauses,
      refusedFilters: this.#refusedFilters,
      dropped: { ...this.#dropped },
      sparkplug: this.#sparkplug?.stats(),
    };
  }

  #onMessage(topic: string, payload: Buffer, resume: () => void): void {
    if (this.#state !== 'running') return;
    // A message held when its connection closed is still a message: taken before the next one.
    this.#releaseHeld();
    if (!this.#writer.full || this.#dropping) {
      this.#take(topic, payload);
      resume();
      return;
    }
    this.#pauses++;
    const timer = this.#timers.setTimeout(() => {
      // The log is stalled, not just slow: keep the newest readings and the connection alive.
      this.#dropping = true;
      this.#releaseHeld();
    }, this.#pauseLimitMs);
    this.#held = { topic, payload, resume, timer };
  }

  /** A write round made room: the next full buffer pauses the client again before dropping. */
  #onRoom(): void {
    this.#dropping = false;
    this.#releaseHeld();
  }

  /** Takes the held message: there is room, or the pause has lasted its limit. */
  #releaseHeld(): void {
    const held = this.#held;
    if (held === undefined) return;
    this.#held = undefined;
    this.#timers.clearTimeout(held.timer);
    this.#take(held.topic, held.payload);
    held.resume();
  }

  #take(topic: string, payload: Buffer): void {
    this.#messages++;
    const sparkplugTopic =
      this.#sparkplugGroup === undefined ? undefined : parseSparkplugTopic(topic, this.#sparkplugGroup);
    if (sparkplugTopic !== undefined) {
      this.#sparkplug?.handle(sparkplugTopic, payload);
      return;
    }
    const matched = findMapping(this.#mappings, topic);
    if (matched === undefined) {
      this.#drop('unmatched');
      return;
    }
    const { mapping, relativeTopic } = matched;
    const claim = this.#table.claim(relativeTopic, mappingOwner(mapping.index), mapping.metadata);
    if ('refused' in claim) {
      this.#drop(claim.refused);
      return;
    }
    const pointTopic = claim.topic;
    const extracted = extractValue(mapping.rule, payload);
    const now = this.#now();
    if (extracted.ok) {
      const sourceTime = extracted.sourceTime ?? now;
      this.#push(
        pointTopic,
        extracted.timeProblem === undefined
          ? { value: extracted.value, quality: 'good', sourceTime }
          : { value: extracted.value, quality: 'uncertain', reason: extracted.timeProblem, sourceTime },
      );
      return;
    }
    this.#badPayloads++;
    const value = this.#table.lastValue(pointTopic) ?? zeroValue(mapping.rule.type);
    this.#push(pointTopic, { value, quality: 'bad', reason: extracted.reason, sourceTime: now });
  }

  #push(topic: string, reading: PointReading): void {
    if (this.#state !== 'running') return;
    const checked = this.#encodable(topic, reading);
    // Only a value the point model takes is repeated by the bad readings that follow it.
    if (checked.quality !== 'bad') this.#table.remember(topic, checked.value);
    if (this.#writer.push(topic, checked)) {
      this.#drop('buffer-full');
      this.#report('the buffer is full: the oldest waiting readings are dropped', undefined);
    }
  }

  /**
   * The reading, or a bad one saying why the point model refuses it (a JSON or Sparkplug string
   * with a lone surrogate): one bad value must not make every write of its round fail, forever.
   */
  #encodable(topic: string, reading: PointReading): PointReading {
    try {
      encodePoint(reading);
      return reading;
    } catch (error) {
      this.#badPayloads++;
      const value = this.#table.lastValue(topic) ?? zeroOf(reading.value);
      const reason = (error as Error).message.slice(0, MAX_REASON_BYTES);
      return { value, quality: 'bad', reason, sourceTime: this.#now() };
    }
  }

  /** Every topic with a value, bad: what this source knew is no longer known to be true. */
  #markAll(reason: string): void {
    const sourceTime = this.#now();
    for (const [topic, value] of this.#table.withValues())
      this.#push(topic, { value, quality: 'bad', reason, sourceTime });
  }

  #onSubscribed(refused: readonly string[]): void {
    this.#refusedFilters = refused;
    if (refused.length > 0)
      this.#report(`the broker refused the subscriptions ${refused.join(', ')}`, undefined);
  }

  #drop(reason: DropReason, count = 1): void {
    this.#dropped[reason] += count;
  }

  #report(message: string, cause: unknown): void {
    const detail = cause === undefined ? '' : `: ${describeSourceError(cause, 0).message}`;
    this.#lastError = { code: undefined, message: `${message}${detail}`, time: this.#now() };
  }
}

function zeroOf(value: PointValue): PointValue {
  if (typeof value === 'string') return '';
  if (typeof value === 'boolean') return false;
  return typeof value === 'number' ? 0 : [];
}

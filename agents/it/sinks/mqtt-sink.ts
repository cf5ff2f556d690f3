/**
 * The MQTT bridge: an IT sink that publishes every point to a broker of the user's choice, as
 * JSON (mqtt/json-format.ts) or as a Sparkplug B edge node (mqtt/sparkplug-format.ts), at QoS 1.
 * What the sink "holds" is what the broker acknowledged: a write resolves, and lastSeq moves,
 * only once every message of it had its PUBACK (mqtt/publish-pipeline.ts). So a broker outage
 * loses nothing: the writes wait (bounded in entries and in time), the consumer's cursor stays
 * behind, and the OT log replays the rest. Delivery to the broker is at least once: after a broken
 * connection the writes in flight are sent again, and subscribers drop repeats by `seq`.
 *
 * The acknowledged cursors are kept in the sink's state directory (mqtt/cursor-file.ts), so a
 * restart resumes near where the broker is rather than replaying everything the OT log holds.
 * The OT agents' log epochs (noteLogEpochs) settle in the pipeline in order with the writes: an
 * epoch is held once every write before it is acknowledged, and before any write after it is. The
 * file is one instant of what is held, so it never has a point of a newer epoch than it names, and
 * after a restart the OT agent still finds a restored log (sink.ts logEpochs).
 */
import type { Logger } from 'pino';
import type { ProcessLock } from '../../../relay/protocol/process-lock.ts';
import { MAX_ENTRIES_IN_FLIGHT } from '../consumer.ts';
import { BridgeConnection } from './mqtt/bridge-connection.ts';
import type { BridgeFormat, PeerStates } from './mqtt/bridge-format.ts';
import type { MqttSinkConfig } from './mqtt/config.ts';
import { CURSOR_SAVE_MS, readBridgeState, writeBridgeState, type BridgeState } from './mqtt/cursor-file.ts';
import { PublishPipeline, type PipelineStats } from './mqtt/publish-pipeline.ts';
import type { SparkplugFormat, SparkplugFormatStats } from './mqtt/sparkplug-format.ts';
import { bridgeBrokerSettings, createBridgeFormat } from './mqtt/bridge-settings.ts';
import { SinkCursors } from './sink-cursors.ts';
import { lockSinkDirectory, prepareSinkDirectory } from './sink-directory.ts';
import { sinkError } from './sink-errors.ts';
import type { Sink, SinkEntry, SinkReport } from './sink.ts';

/**
 * Entries accepted and not yet acknowledged before writes are refused (AGENT_ERR_SINK_BUSY): two
 * consumers' worth of what a consumer hands a sink before it leaves the rest to replay
 * (consumer.ts MAX_ENTRIES_IN_FLIGHT); some 300 bytes each in memory.
 */
export const MAX_PENDING_ENTRIES = 2 * MAX_ENTRIES_IN_FLIGHT;
/** How often the OT agents' session state is looked at, for status topics and device deaths. */
export const PEER_POLL_MS = 1_000;

export interface MqttSinkOptions {
  readonly config: MqttSinkConfig;
  /** The IT agent's name: the default client id and edge node, the bridge's status topic. */
  readonly agentName: string;
  /** The sink's own directory (cursor-file.ts sinkStateDir). */
  readonly stateDir: string;
  readonly logger: Logger;
  readonly now?: () => number;
  readonly random?: () => number;
}

export interface MqttSinkStats extends PipelineStats {
  readonly connected: boolean;
  readonly connectionAttempts: number;
  readonly connections: number;
  /** Points (and gaps) whose writes the broker acknowledged whole. */
  readonly entriesAcknowledged: number;
  /** Writes refused at once because too much was waiting. */
  readonly refused: number;
  readonly lastError: string | undefined;
  readonly sparkplug: SparkplugFormatStats | undefined;
}

export interface MqttSink extends Sink {
  stats(): MqttSinkStats;
}

export async function openMqttSink(options: MqttSinkOptions): Promise<MqttSink> {
  await prepareSinkDirectory(options.stateDir);
  const lock = lockSinkDirectory(options.stateDir);
  try {
    const state = await readBridgeState(options.stateDir);
    const sink = new MqttBridgeSink(options, lock, state);
    sink.start();
    return sink;
  } catch (error) {
    lock.release();
    throw error;
  }
}

class MqttBridgeSink implements MqttSink {
  readonly name: string;
  readonly #options: MqttSinkOptions;
  readonly #lock: ProcessLock;
  readonly #format: BridgeFormat;
  readonly #sparkplug: SparkplugFormat | undefined;
  readonly #connection: BridgeConnection;
  readonly #pipeline: PublishPipeline;
  /** Held once the broker acknowledged them. */
  readonly #cursors: SinkCursors;
  readonly #timer: NodeJS.Timeout;
  #peers: () => PeerStates = () => new Map();
  /** The acknowledged cursors moved since the file was written. */
  #unsaved = false;
  #savedBdSeq: number | undefined;
  #saving: Promise<void> = Promise.resolve();
  #entriesAcknowledged = 0;
  #refused = 0;
  #lastError: string | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: MqttSinkOptions, lock: ProcessLock, state: BridgeState) {
    const { cursors, bdSeq } = state;
    const { config, agentName } = options;
    const now = options.now ?? Date.now;
    this.name = config.name;
    this.#options = options;
    this.#lock = lock;
    this.#cursors = new SinkCursors(cursors, state.origins);
    const { format, sparkplug } = createBridgeFormat(config, agentName, bdSeq, now);
    this.#format = format;
    this.#sparkplug = sparkplug;
    this.#connection = new BridgeConnection(
      bridgeBrokerSettings(config, agentName, format),
      () => this.#format.will(),
      {
        connected: () => {
          this.#options.logger.info({ sink: this.name, url: config.broker.url }, 'connected to the broker');
          this.#pipeline.connected(this.#format.connected(this.#peers()));
        },
        disconnected: () => {
          this.#options.logger.info({ sink: this.name }, 'broker connection lost; reconnecting');
          this.#pipeline.disconnected();
        },
        message: (topic, payload) => this.#pipeline.send(this.#format.command(topic, payload, this.#peers())),
        problem: (message, cause) => {
          this.#lastError = `${message}: ${cause instanceof Error ? cause.message : String(cause)}`;
          this.#options.logger.warn({ sink: this.name, err: cause }, message);
        },
      },
      options.random,
    );
    this.#pipeline = new PublishPipeline(
      this.#connection,
      this.#format,
      config.inFlight,
      {
        acknowledged: (advance, entries, origin) => {
          this.#cursors.hold(advance);
          if (origin !== undefined) this.#cursors.holdOrigin(origin);
          this.#entriesAcknowledged += entries;
          this.#unsaved = true;
        },
        abandoned: () => this.#cursors.forgetUnheld(),
      },
      now,
    );
    this.#savedBdSeq = bdSeq;
    // Not unref'd: a sink with writes waiting for the broker is work in progress until closed.
    this.#timer = setInterval(() => this.#tick(), Math.min(PEER_POLL_MS, CURSOR_SAVE_MS));
  }

  start(): void {
    this.#connection.start();
  }

  lastSeq(topic: string): number {
    return this.#cursors.lastSeq(topic);
  }

  cursors(): ReadonlyMap<string, number> {
    return new Map(this.#cursors.held);
  }

  // Everything before the await runs at the call: writes are ordered by their calls, and a
  // refused write changes nothing.
  async write(entries: readonly SinkEntry[]): Promise<void> {
    if (this.#closing !== undefined) throw sinkError('closed', `the sink ${this.name} is closed`);
    const advance = this.#cursors.plan(entries);
    if (entries.length === 0) return;
    if (this.#pipeline.pendingEntries + entries.length > MAX_PENDING_ENTRIES) {
      this.#refused++;
      throw sinkError('busy', 'the broker is behind: await writes before making more');
    }
    this.#cursors.accept(advance);
    await this.#pipeline.accept(entries, advance);
  }

  logEpochs(agent: string): readonly string[] {
    return this.#cursors.logEpochs(agent);
  }

  /** Held in order with the writes around it: once the writes before it are acknowledged. */
  async noteLogEpochs(agent: string, epochs: readonly string[]): Promise<void> {
    if (this.#closing !== undefined) throw sinkError('closed', `the sink ${this.name} is closed`);
    const origin = this.#cursors.acceptOrigin(agent, epochs);
    if (origin === undefined) return;
    await this.#pipeline.accept([], new Map(), origin);
  }

  followPeers(peers: () => PeerStates): void {
    this.#peers = peers;
  }

  stats(): MqttSinkStats {
    const connection = this.#connection.stats();
    return {
      connected: connection.connected,
      connectionAttempts: connection.attempts,
      connections: connection.connections,
      ...this.#pipeline.stats(),
      entriesAcknowledged: this.#entriesAcknowledged,
      refused: this.#refused,
      lastError: this.#lastError,
      sparkplug: this.#sparkplug?.stats(),
    };
  }

  report(): SinkReport {
    const stats = this.stats();
    return {
      type: 'mqtt',
      connected: stats.connected,
      connections: stats.connections,
      inFlight: stats.inFlight,
      pending: stats.pendingEntries,
      acknowledged: stats.acknowledged,
      entriesAcknowledged: stats.entriesAcknowledged,
      interrupted: stats.interrupted,
      expired: stats.expired,
      lastError: stats.lastError,
    };
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    clearInterval(this.#timer);
    try {
      this.#pipeline.close(sinkError('closed', `the sink ${this.name} is closed`));
      await this.#connection.stop(this.#format.closing());
      await this.#save();
    } finally {
      this.#lock.release();
    }
  }

  #tick(): void {
    this.#pipeline.expire();
    if (this.#connection.connected) this.#pipeline.send(this.#format.peersChanged(this.#peers()));
    void this.#save().catch((error: unknown) => {
      this.#lastError = error instanceof Error ? error.message : String(error);
      this.#options.logger.warn({ sink: this.name, err: error }, 'bridge cursors not saved; retrying');
    });
  }

  /** Writes the cursor file if it changed; one write at a time. */
  #save(): Promise<void> {
    this.#saving = this.#saving.then(async () => {
      const bdSeq = this.#sparkplug?.bdSeq;
      if (!this.#unsaved && bdSeq === this.#savedBdSeq) return;
      this.#unsaved = false;
      try {
        await writeBridgeState(this.#options.stateDir, {
          cursors: new Map(this.#cursors.held),
          origins: new Map(this.#cursors.heldOrigins),
          bdSeq,
        });
        this.#savedBdSeq = bdSeq;
      } catch (error) {
        this.#unsaved = true;
        throw error;
      }
    });
    const saved = this.#saving;
    this.#saving = saved.catch(() => undefined);
    return saved;
  }
}

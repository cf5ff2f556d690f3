/**
 * The `opcua` source: the items of one OPC UA server, each a monitored item of one subscription,
 * each data change a reading of its topic (data-change.ts). While the server cannot be reached
 * (down at start, restarting, refusing our certificate or its own is untrusted) every point reads
 * bad with the reason, once per cause, holding its last value; the first data change after the
 * link is back makes it good again. node-opcua is loaded when the source starts, not when the
 * agent's config is read: it takes seconds to load, and most agents have no OPC UA source.
 */
import { readFileSync } from 'node:fs';
import type { DataValue } from 'node-opcua';
import { fileError } from '../../../../relay/protocol/command-line.ts';
import { ConfigError, DmzError, type ConfigIssue } from '../../../../relay/protocol/errors.ts';
import {
  refuseOpenPermissions,
  refuseWritableByOthers,
} from '../../../../relay/protocol/file-permissions.ts';
import { validateTopic } from '../../../../relay/protocol/topics.ts';
import type { PointReading, PointValue } from '../../../points/point.ts';
import { ReadingQueue } from '../reading-queue.ts';
import {
  PLATFORM_TIMERS,
  type PointSource,
  type SourceBackend,
  type SourceContext,
  type SourceOutput,
  type SourceStats,
  type SourceTimers,
  type TopicMetadata,
  type WriteOutcome,
  type WriteValue,
} from '../source.ts';
import { readCertificateFile } from './certificates.ts';
import { checkOpcuaConfig } from './checks.ts';
import type { ClientPki } from './client-pki.ts';
import {
  OpcuaConfigSchema,
  opcuaTopics,
  resolveOpcuaSettings,
  type OpcuaConfig,
  type OpcuaSettings,
} from './config.ts';
import type { OpcuaConnection, UserCredentials } from './connection.ts';

/** A password is a line of text; a file much longer than that is the wrong file. */
const MAX_PASSWORD_FILE_BYTES = 4096;

/** Reasons that say "the server is not there" (Part 4 §7.39), as opposed to "it refused". */
const UNREACHABLE: ReadonlySet<string> = new Set(['BadConnectionClosed', 'BadServerNotConnected']);

export const OPCUA_SOURCE: SourceBackend<OpcuaConfig> = {
  schema: OpcuaConfigSchema,
  check: checkOpcuaConfig,
  topics: opcuaTopics,
  create: (config, context) => new OpcuaSource(config, context),
  // Any item can be written: whether its node takes the value is the node's DataType's to say.
  checkWrite: (config, topic) =>
    opcuaTopics(config).includes(topic) ? undefined : `is no item of source ${config.name}`,
};

type ReadingOf = (dataValue: DataValue, now: number, lastValue: PointValue) => PointReading;

class OpcuaSource implements PointSource {
  readonly type = 'opcua';
  readonly name: string;
  readonly topics: readonly string[];
  readonly topicMetadata: ReadonlyMap<string, TopicMetadata>;
  readonly #settings: OpcuaSettings;
  readonly #agentName: string;
  readonly #stateDir: string;
  readonly #user: UserCredentials | undefined;
  readonly #serverCertificate: Buffer | undefined;
  readonly #now: () => number;
  readonly #timers: SourceTimers;
  /** Per item: the last usable value, which a bad reading carries on. */
  readonly #lastValues: PointValue[];
  #state: 'ready' | 'running' | 'stopped' = 'ready';
  #queue: ReadingQueue | undefined;
  #opening: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  #pki: ClientPki | undefined;
  #connection: OpcuaConnection | undefined;
  #readingOf: ReadingOf | undefined;
  /** Why every point is bad right now; undefined while the link is up. */
  #downReason: string | undefined;

  constructor(config: OpcuaConfig, context: SourceContext) {
    const at = context.configPath ?? '';
    this.#settings = resolveOpcuaSettings(config, context.agentName);
    const issues: ConfigIssue[] = [];
    checkTopics(issues, this.#settings, context.agentName, at);
    if (context.stateDir === undefined) {
      issues.push({
        path: at,
        message: 'an OPC UA source needs a state directory for its certificate and trust lists',
      });
    }
    const user =
      config.user === undefined ? undefined : readUser(issues, config.user, `${at}/user/passwordFile`);
    const serverCertificate = readServerCertificate(
      issues,
      config.security.serverCertificate,
      `${at}/security/serverCertificate`,
    );
    if (issues.length > 0) throw new ConfigError(issues, `source ${config.name}`);
    this.name = config.name;
    this.topics = Object.freeze(this.#settings.items.map((item) => item.topic));
    this.topicMetadata = new Map(
      this.#settings.items.map((item) => [item.topic, item.unit === undefined ? {} : { unit: item.unit }]),
    );
    this.#agentName = context.agentName;
    this.#stateDir = context.stateDir ?? '';
    this.#user = user;
    this.#serverCertificate = serverCertificate;
    this.#now = context.now ?? Date.now;
    this.#timers = context.timers ?? PLATFORM_TIMERS;
    this.#lastValues = this.#settings.items.map(() => 0);
  }

  start(output: SourceOutput): void {
    if (this.#state !== 'ready') {
      throw new DmzError('AGENT_ERR_SOURCE_STATE', `source ${this.name} was started or stopped already`);
    }
    this.#state = 'running';
    this.#queue = new ReadingQueue(output, this.#now, this.#timers);
    this.#opening = this.#open().catch((error: unknown) => {
      // The PKI could not be made (a full disk, permissions): nothing can connect until a restart.
      const failure =
        error instanceof DmzError
          ? error
          : new DmzError(
              'AGENT_ERR_OPCUA_CONNECT',
              `cannot open the OPC UA client's PKI: ${(error as Error).message}`,
              { cause: error },
            );
      this.#down('BadConfigurationError', failure);
    });
  }

  /** Ends the session and the client, then waits for the writes in flight; once, however often called. */
  stop(): Promise<void> {
    this.#state = 'stopped';
    this.#stopping ??= this.#close();
    return this.#stopping;
  }

  async #close(): Promise<void> {
    await this.#opening;
    await this.#connection?.stop();
    if (this.#pki !== undefined) {
      const { closeClientPki } = await import('./client-pki.ts');
      await closeClientPki(this.#pki);
    }
    await this.#queue?.close();
  }

  write(topic: string, value: WriteValue, deadline: number): Promise<WriteOutcome> {
    const item = this.#settings.items.find((candidate) => candidate.topic === topic);
    if (item === undefined || this.#connection === undefined) {
      return Promise.resolve({
        ok: false,
        code: 'AGENT_ERR_WRITE_DEVICE_FAILED',
        message: item === undefined ? 'not an item of this source' : 'the OPC UA server is not connected',
      });
    }
    return this.#connection.write(item.nodeId, value, () => this.#now() >= deadline);
  }

  stats(): SourceStats {
    const empty = { readings: 0, batches: 0, failedWrites: 0, behind: 0, lagMs: 0, lastError: undefined };
    return { ...(this.#queue?.stats() ?? empty), finished: false };
  }

  async #open(): Promise<void> {
    const [{ openClientPki, trustServerCertificate }, { OpcuaConnection }, { readingFromDataValue }] =
      await Promise.all([import('./client-pki.ts'), import('./connection.ts'), import('./data-change.ts')]);
    this.#readingOf = readingFromDataValue;
    const pki = await openClientPki(this.#stateDir, { agentName: this.#agentName, sourceName: this.name });
    this.#pki = pki;
    // The operator named this file: trusting it is their explicit decision, made again each start.
    if (this.#serverCertificate !== undefined) await trustServerCertificate(pki, this.#serverCertificate);
    if (this.#state !== 'running') return;
    this.#connection = new OpcuaConnection({
      settings: this.#settings,
      pki,
      user: this.#user,
      serverCertificate: this.#serverCertificate,
      events: {
        dataChange: (index, dataValue) => this.#dataChange(index, dataValue),
        itemFailed: (index, reason) => this.#itemFailed(index, reason),
        down: (reason, error) => this.#down(reason, error),
        up: () => (this.#downReason = undefined),
      },
      timers: this.#timers,
    });
    this.#connection.start();
  }

  #dataChange(index: number, dataValue: DataValue): void {
    const item = this.#settings.items[index];
    if (item === undefined || this.#readingOf === undefined) return;
    this.#downReason = undefined;
    let reading: PointReading;
    try {
      reading = this.#readingOf(dataValue, this.#now(), this.#lastValues[index] ?? 0);
    } catch {
      // A data value node-opcua decoded into something data-change.ts did not foresee.
      reading = this.#badReading(index, 'the data change could not be read');
    }
    if (reading.quality !== 'bad') this.#lastValues[index] = reading.value;
    this.#queue?.push(item.topic, reading);
  }

  #itemFailed(index: number, reason: string): void {
    const item = this.#settings.items[index];
    if (item === undefined) return;
    this.#queue?.noteError(undefined, `item ${item.name} (${item.nodeId}): ${reason}`);
    this.#queue?.push(item.topic, this.#badReading(index, reason));
  }

  /** Every point bad with `reason`, once per cause: a server that stays away is not logged each retry. */
  #down(reason: string, error: DmzError): void {
    this.#queue?.noteError(error.code, error.message);
    if (this.#state !== 'running' || this.#downReason === reason) return;
    // A lost connection whose retries find nobody listening is one outage, not two.
    if (UNREACHABLE.has(reason) && this.#downReason !== undefined && UNREACHABLE.has(this.#downReason))
      return;
    this.#downReason = reason;
    this.#settings.items.forEach((item, index) =>
      this.#queue?.push(item.topic, this.#badReading(index, reason)),
    );
  }

  #badReading(index: number, reason: string): PointReading {
    return { value: this.#lastValues[index] ?? 0, quality: 'bad', reason, sourceTime: this.#now() };
  }
}

/** Every topic fits under the agent's name (the config checks could not know the name). */
function checkTopics(issues: ConfigIssue[], settings: OpcuaSettings, agentName: string, at: string): void {
  for (const [index, item] of settings.items.entries()) {
    try {
      validateTopic(item.topic);
    } catch (error) {
      issues.push({
        path: `${at}/items/${index}/name`,
        message: `topic ${item.topic} under agent ${agentName} is invalid: ${(error as Error).message}`,
      });
    }
  }
}

/**
 * The password, from a file open to its owner alone: the first line, without its line ending. Read
 * once at creation, so that a missing or open file stops the agent at start, not at a reconnect.
 */
function readUser(
  issues: ConfigIssue[],
  user: NonNullable<OpcuaConfig['user']>,
  at: string,
): UserCredentials | undefined {
  try {
    refuseOpenPermissions(user.passwordFile, { code: 'CONFIG_ERR_INVALID', owner: 'any' });
    const text = readFileSync(user.passwordFile, 'utf8');
    const password = text.split(/\r?\n/)[0] ?? '';
    if (text.length > MAX_PASSWORD_FILE_BYTES || password === '') {
      issues.push({ path: at, message: 'must hold the password on its first line, and nothing much else' });
      return undefined;
    }
    return { name: user.name, password };
  } catch (error) {
    issues.push({ path: at, message: describeFileProblem(error, user.passwordFile) });
    return undefined;
  }
}

function readServerCertificate(
  issues: ConfigIssue[],
  path: string | undefined,
  at: string,
): Buffer | undefined {
  if (path === undefined) return undefined;
  try {
    // The pin decides which server is trusted: one another user could replace is no pin.
    refuseWritableByOthers(path);
    return readCertificateFile(path);
  } catch (error) {
    issues.push({ path: at, message: describeFileProblem(error, path) });
    return undefined;
  }
}

function describeFileProblem(error: unknown, path: string): string {
  const problem = error instanceof DmzError ? error : fileError('read', path, error);
  return problem.hint === undefined ? problem.message : `${problem.message}; ${problem.hint}`;
}

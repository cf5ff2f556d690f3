/**
 * The OT agent's answer to a write command: every check made here, on the OT host, whatever the
 * relay or the IT side say, in a fixed order, each refusal with its own code:
 *
 *   1. the command's shape (decodeCommand), addressed to this agent, for the request's topic;
 *   2. the point is listed as writable (ot.writes), else it is read-only;
 *   3. the session's peer (the relay took it from the IT agent's certificate) is one of its
 *      writers, and the command's issuer is that peer;
 *   4. the signature, when the point pins keys: a relay holding the CA can make sessions and
 *      frames, but not a signature by an IT agent's own key;
 *   5. the deadline: not passed, not further ahead than MAX_DEADLINE_AHEAD_MS;
 *   6. the nonce, claimed durably before anything is executed (nonce-record.ts): from here on an
 *      authentic command is used up, whatever follows, so a replay of it does nothing;
 *   7. the value's type and range, then the local write window when the point needs it;
 *   8. an `executing` line in the audit log (a log that cannot be written refuses the write),
 *      the deadline once more (the fsyncs took time), then the device write, once; the source
 *      checks it again when the device's turn comes, and sends nothing past it.
 *
 * Commands to one point run in the order they arrived; commands to different points at once.
 *
 * Every command and its outcome goes to the audit log before the requester hears it.
 */
import { DoublingCount } from '../../runtime/doubling-count.ts';
import type { Logger } from 'pino';
import { DmzError, type ErrorCode } from '../../../relay/protocol/errors.ts';
import { createPrivateDirectory } from '../../../relay/protocol/durable-files.ts';
import { MAX_REQUEST_TIMEOUT_MS } from '../../../relay/protocol/limits.ts';
import { boundMessage } from '../../../relay/protocol/wire-text.ts';
import type { IncomingRequest } from '../../link/session-events.ts';
import type { PointSource } from '../sources/source.ts';
import { WriteAuditLog, type WriteAuditEntry } from './audit-log.ts';
import { decodeCommand, verifyCommand, type DecodedCommand } from './command.ts';
import type { WritablePoint, WriteSettings } from './config.ts';
import { NonceRecord } from './nonce-record.ts';
import { checkValue } from './value-checks.ts';
import { WriteCounts, type WriteCountsSnapshot } from './write-counts.ts';
import { readWindow, writesDir } from './write-window.ts';

/**
 * How far ahead a deadline may be: the longest request the relay carries (one minute), plus 30 s
 * for the IT host's clock running ahead of this one. A command meant for later is not a command.
 */
export const MAX_DEADLINE_AHEAD_MS = MAX_REQUEST_TIMEOUT_MS + 30_000;

/**
 * Commands checked or executed at once. An HMI has one or two in flight; the relay lets one IT
 * agent have 256 pending, but a compromised relay is bound by nothing, so the OT agent bounds its
 * own work: beyond 64, a command is refused at once (AGENT_ERR_WRITE_BUSY), before any fsync.
 */
export const MAX_COMMANDS_IN_FLIGHT = 64;

/** What a done write answers with; refusals and failures answer with their code instead. */
export const WRITE_DONE = new TextEncoder().encode(JSON.stringify({ status: 'done' }));

/** Codes of commands that passed every check but did not get done: the outcome `failed`. */
const FAILURES: ReadonlySet<ErrorCode> = new Set([
  'AGENT_ERR_WRITE_DEVICE_EXCEPTION',
  'AGENT_ERR_WRITE_DEVICE_FAILED',
  'AGENT_ERR_WRITE_STORAGE',
]);

export interface WriteServiceOptions {
  readonly agentName: string;
  /** The agent's state directory; the service keeps its files under `writes/`. */
  readonly state: string;
  readonly settings: WriteSettings;
  readonly sources: readonly PointSource[];
  readonly logger: Logger;
  readonly now?: () => number;
}

interface Target {
  readonly point: WritablePoint;
  readonly write: NonNullable<PointSource['write']>;
}

export class WriteService {
  readonly #agentName: string;
  readonly #state: string;
  readonly #maxWindowMs: number;
  readonly #targets: ReadonlyMap<string, Target>;
  readonly #nonces: NonceRecord;
  readonly #audit: WriteAuditLog;
  readonly #logger: Logger;
  readonly #now: () => number;
  #inFlight = 0;
  readonly #busyRefusals = new DoublingCount();
  readonly #counts = new WriteCounts();
  /** The latest command of each topic in flight (at most MAX_COMMANDS_IN_FLIGHT topics). */
  readonly #lastOfTopic = new Map<string, Promise<unknown>>();

  private constructor(options: WriteServiceOptions, nonces: NonceRecord, audit: WriteAuditLog) {
    this.#agentName = options.agentName;
    this.#state = options.state;
    this.#maxWindowMs = options.settings.maxWindowMs;
    this.#nonces = nonces;
    this.#audit = audit;
    this.#logger = options.logger;
    this.#now = options.now ?? Date.now;
    const targets = new Map<string, Target>();
    for (const point of options.settings.points) {
      const topic = `${options.agentName}/${point.point}`;
      const source = options.sources.find((candidate) => candidate.topics.includes(topic));
      // The config checks found the point in a source that takes writes; anything else stays read-only.
      const write = source?.write?.bind(source);
      if (write !== undefined) targets.set(topic, { point, write });
    }
    this.#targets = targets;
  }

  static async open(options: WriteServiceOptions): Promise<WriteService> {
    const now = options.now ?? Date.now;
    const dir = writesDir(options.state);
    await createPrivateDirectory(dir);
    const nonces = await NonceRecord.open(dir, now);
    return new WriteService(options, nonces, new WriteAuditLog(dir));
  }

  /**
   * Answers one request of session peer `peer` (undefined: a session this agent never accepted):
   * WRITE_DONE, or a DmzError with the refusal's or failure's code.
   */
  async handle(request: IncomingRequest, peer: string | undefined): Promise<Uint8Array> {
    if (this.#inFlight >= MAX_COMMANDS_IN_FLIGHT) {
      // Not audited line by line: a flood must not become a flood of fsyncs. Counted in the log.
      this.#counts.notDone('refused', 'AGENT_ERR_WRITE_BUSY');
      // Logged at the 1st, 2nd, 4th, 8th, ...: a flood cannot fill the log either.
      if (this.#busyRefusals.note())
        this.#logger.warn(
          { refused: this.#busyRefusals.count, peer, topic: request.topic },
          'write commands refused: too many in flight',
        );
      throw new DmzError('AGENT_ERR_WRITE_BUSY');
    }
    this.#inFlight++;
    // One point's commands run one after another, in the order they arrived: their checks take
    // unequal time (a signature tried against two keys, an fsync), and the later command must be
    // the one the device is left with. Each waits its turn with its deadline running.
    const turn = (this.#lastOfTopic.get(request.topic) ?? Promise.resolve()).then(() =>
      this.#handle(request, peer),
    );
    const settled = turn.catch(() => undefined);
    this.#lastOfTopic.set(request.topic, settled);
    try {
      return await turn;
    } finally {
      this.#inFlight--;
      if (this.#lastOfTopic.get(request.topic) === settled) this.#lastOfTopic.delete(request.topic);
    }
  }

  async #handle(request: IncomingRequest, peer: string | undefined): Promise<Uint8Array> {
    const entry: Mutable<WriteAuditEntry> = {
      time: new Date(this.#now()).toISOString(),
      session: request.session,
      peer,
      topic: request.topic,
      outcome: 'refused',
    };
    try {
      await this.#execute(request, peer, entry);
      entry.outcome = 'done';
      this.#counts.done();
      await this.#record(entry);
      return WRITE_DONE;
    } catch (error) {
      const refusal =
        error instanceof DmzError
          ? error
          : new DmzError('RELAY_ERR_INTERNAL', 'the write failed inside the agent');
      if (!(error instanceof DmzError)) this.#logger.error({ err: error }, 'write handler failed');
      entry.outcome =
        FAILURES.has(refusal.code) || refusal.code === 'RELAY_ERR_INTERNAL' ? 'failed' : 'refused';
      entry.code = refusal.code;
      entry.message = refusal.message;
      this.#counts.notDone(entry.outcome, refusal.code);
      await this.#record(entry);
      // The wire takes printable ASCII of at most 512 characters (a device's or a library's text may be more).
      throw new DmzError(refusal.code, boundMessage(refusal.message));
    }
  }

  /** Commands answered since start, by outcome and code (status and metrics). */
  stats(): WriteCountsSnapshot {
    return this.#counts.snapshot();
  }

  async close(): Promise<void> {
    await Promise.all([this.#nonces.close(), this.#audit.close()]);
  }

  async #execute(
    request: IncomingRequest,
    peer: string | undefined,
    entry: Mutable<WriteAuditEntry>,
  ): Promise<void> {
    const command = decodeCommand(request.payload);
    const { claims } = command;
    entry.value = claims.value;
    entry.nonce = claims.nonce;
    entry.deadline = claims.deadline;
    if (claims.aud !== this.#agentName) throw new DmzError('AGENT_ERR_WRITE_WRONG_AUDIENCE');
    if (claims.topic !== request.topic)
      throw new DmzError('AGENT_ERR_WRITE_MALFORMED', 'the command is for another topic than the request');
    const target = this.#targets.get(request.topic);
    if (target === undefined) throw new DmzError('AGENT_ERR_WRITE_READ_ONLY');
    const { point, write } = target;
    if (peer === undefined || !point.writers.includes(peer)) throw new DmzError('AGENT_ERR_WRITE_NOT_WRITER');
    if (claims.iss !== peer) throw new DmzError('AGENT_ERR_WRITE_ISSUER_MISMATCH');
    await this.#checkSignature(command, point, peer);
    this.#checkDeadline(claims.deadline);
    await this.#nonces.claim(claims.nonce, claims.deadline);
    checkValue(point, claims.value);
    if (point.window) {
      const window = await readWindow(this.#state, this.#maxWindowMs, this.#now());
      if (!window.open) {
        entry.detail = window.problem ?? window.reason;
        throw new DmzError(
          'AGENT_ERR_WRITE_WINDOW_CLOSED',
          `the local write window is closed (${window.reason})`,
        );
      }
    }
    try {
      await this.#audit.record({ ...entry, outcome: 'executing' });
    } catch (cause) {
      throw new DmzError(
        'AGENT_ERR_WRITE_STORAGE',
        'the write audit log cannot be written: nothing is written unaudited',
        {
          cause,
        },
      );
    }
    this.#checkDeadline(claims.deadline);
    // The source checks the deadline again when the device's turn comes (a reconnect, a slow read).
    const outcome = await write(request.topic, claims.value, claims.deadline);
    if (!outcome.ok) {
      if (outcome.detail !== undefined) entry.detail = outcome.detail;
      throw new DmzError(outcome.code, outcome.message);
    }
  }

  async #checkSignature(command: DecodedCommand, point: WritablePoint, peer: string): Promise<void> {
    if (point.signedBy.length === 0) return;
    await verifyCommand(
      command,
      point.signedBy.filter((key) => key.agent === peer),
    );
  }

  #checkDeadline(deadline: number): void {
    const now = this.#now();
    if (deadline <= now) throw new DmzError('AGENT_ERR_WRITE_EXPIRED');
    if (deadline > now + MAX_DEADLINE_AHEAD_MS) {
      throw new DmzError(
        'AGENT_ERR_WRITE_DEADLINE_TOO_FAR',
        `the deadline is more than ${MAX_DEADLINE_AHEAD_MS / 1000} s ahead of this agent's clock`,
      );
    }
  }

  async #record(entry: WriteAuditEntry): Promise<void> {
    const fields = { write: entry };
    if (entry.outcome === 'done') this.#logger.info(fields, 'write done');
    else this.#logger.warn(fields, `write ${entry.outcome}`);
    try {
      await this.#audit.record(entry);
    } catch (error) {
      // The outcome stands (a done write happened); the operator must hear the audit log failed.
      this.#logger.error({ err: error, write: entry }, 'write audit log not written');
    }
  }
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * Who asked the IT agent for a write: one JSON line per write its API was asked for, in
 * `<state>/api/audit.jsonl` (0600, fdatasync'd, rotated as the OT agent's write audit is:
 * agents/ot/writes/audit-log.ts), with the API user, the topic, the value, the outcome and the OT
 * side's code. A write that goes out has a `sending` line first, and a log that cannot take it
 * sends nothing, so nothing reaches an OT agent unattributed. Both lines carry the command's
 * nonce, which the OT agent's audit line of the same write names too: the two logs join on it.
 * The OT side still sees, and authorises, the IT agent alone; the user is this side's record.
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import { createPrivateDirectory } from '../../relay/protocol/durable-files.ts';
import type { ErrorCode } from '../../relay/protocol/errors.ts';
import { WriteAuditLog } from '../ot/writes/audit-log.ts';
import { newNonce } from '../ot/writes/command.ts';
import type { WriteValue } from '../ot/sources/source.ts';
import type { WriteClient, WriteCommand, WriteResult } from './write-client.ts';

/** Under the agent's state directory: `api/audit.jsonl`. */
export const API_AUDIT_DIR = 'api';
/**
 * Refusals written per user a minute, whole: far above a person retrying, while a user who may
 * only read cannot flood the log (rotated at 64 MiB) until the lines of real writes are gone.
 * Past it, the refusals are counted, and the user's first line of a later minute says how many.
 */
export const MAX_AUDITED_REFUSALS_PER_MINUTE = 30;
const REFUSAL_WINDOW_MS = 60_000;

export interface ApiWriteAuditEntry {
  readonly time: string;
  /** The API user who asked; null when the API has no users (loopback, anyone). */
  readonly user: string | null;
  readonly topic: string;
  readonly value: WriteValue;
  /** The command's nonce, as the OT agent's audit names it; none for a write never sent. */
  readonly nonce?: string;
  /** `sending`: the command goes out next; its outcome follows on a line of its own. */
  readonly outcome: 'sending' | 'done' | 'refused' | 'failed';
  readonly code?: ErrorCode;
  readonly message?: string;
  /** This user's refusals not written since its last line (past MAX_AUDITED_REFUSALS_PER_MINUTE). */
  readonly unwrittenRefusals?: number;
}

/** One user's refusals in the current minute. */
interface RefusalWindow {
  start: number;
  written: number;
  unwritten: number;
}

export class AuditedWrites {
  readonly #client: Pick<WriteClient, 'write'> | undefined;
  readonly #log: WriteAuditLog<ApiWriteAuditEntry>;
  readonly #logger: Logger;
  readonly #now: () => number;
  /** By user (null: the API has none); at most MAX_API_USERS + 1 entries. */
  readonly #refusals = new Map<string | null, RefusalWindow>();

  private constructor(
    client: Pick<WriteClient, 'write'> | undefined,
    log: WriteAuditLog<ApiWriteAuditEntry>,
    logger: Logger,
    now: () => number,
  ) {
    this.#client = client;
    this.#log = log;
    this.#logger = logger;
    this.#now = now;
  }

  /** The audit in `<state>/api/`, created 0700 if missing; `client` undefined: no writes to send. */
  static async open(options: {
    readonly state: string;
    readonly client: Pick<WriteClient, 'write'> | undefined;
    readonly logger: Logger;
    readonly now?: () => number;
  }): Promise<AuditedWrites> {
    const dir = join(options.state, API_AUDIT_DIR);
    await createPrivateDirectory(dir);
    return new AuditedWrites(options.client, new WriteAuditLog(dir), options.logger, options.now ?? Date.now);
  }

  /** Whether the agent can send writes at all. */
  get available(): boolean {
    return this.#client !== undefined;
  }

  /** Sends `command` for `user`, audited before it goes and when its outcome is known. */
  async write(user: string | undefined, command: WriteCommand): Promise<WriteResult> {
    const client = this.#client;
    if (client === undefined) throw new Error('no write client: check available first');
    const nonce = newNonce();
    const asked = { user: user ?? null, topic: command.topic, value: command.value, nonce };
    try {
      await this.#log.record({ time: this.#time(), ...asked, outcome: 'sending' });
    } catch (error) {
      this.#logger.error({ err: error, write: asked }, 'API write audit not written: the write is not sent');
      return {
        status: 'failed',
        code: 'AGENT_ERR_WRITE_STORAGE',
        message: "the IT agent's write audit log cannot be written: nothing was sent",
      };
    }
    const result = await client.write({ ...command, nonce });
    await this.#record({
      time: this.#time(),
      ...asked,
      outcome: result.status,
      ...(result.code === undefined ? {} : { code: result.code }),
      message: result.message,
    });
    return result;
  }

  /** A write refused on this side (the user's role, a topic the API does not offer): nothing sent. */
  async refuse(
    user: string | undefined,
    asked: { readonly topic: string; readonly value: WriteValue },
    code: ErrorCode,
    message: string,
  ): Promise<void> {
    const now = this.#now();
    let window = this.#refusals.get(user ?? null);
    let unwritten = 0;
    if (window === undefined || now - window.start >= REFUSAL_WINDOW_MS) {
      unwritten = window?.unwritten ?? 0;
      window = { start: now, written: 0, unwritten: 0 };
      this.#refusals.set(user ?? null, window);
    }
    if (window.written >= MAX_AUDITED_REFUSALS_PER_MINUTE) {
      if (window.unwritten++ === 0)
        this.#logger.warn(
          { user: user ?? null },
          'API write refusals of this user counted, not written, this minute',
        );
      return;
    }
    window.written++;
    await this.#record({
      time: new Date(now).toISOString(),
      user: user ?? null,
      topic: asked.topic,
      value: asked.value,
      outcome: 'refused',
      code,
      message,
      ...(unwritten === 0 ? {} : { unwrittenRefusals: unwritten }),
    });
  }

  close(): Promise<void> {
    for (const [user, window] of this.#refusals)
      if (window.unwritten > 0)
        this.#logger.warn(
          { user, unwrittenRefusals: window.unwritten },
          'API write refusals not written at close',
        );
    return this.#log.close();
  }

  async #record(entry: ApiWriteAuditEntry): Promise<void> {
    try {
      await this.#log.record(entry);
    } catch (error) {
      // The outcome stands (a done write happened); the operator must hear the audit failed.
      this.#logger.error({ err: error, write: entry }, 'API write audit not written');
    }
  }

  #time(): string {
    return new Date(this.#now()).toISOString();
  }
}

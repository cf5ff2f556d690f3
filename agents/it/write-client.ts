/**
 * The IT side of a write: a command signed with the IT agent's own key (write-key.ts), sent in a
 * session with the OT agent (one per OT agent, opened on the first write and kept), answered by
 * the OT agent's own checks (agents/ot/writes/write-service.ts). Every outcome is a WriteResult,
 * never a throw, so an HTTP API or a CLI can hand it on as it is:
 *   - done: the device took the value;
 *   - refused: a check said no (the OT agent's, or the relay's policy); nothing was written;
 *   - failed: not done for another reason (the device refused or did not answer, the OT agent is
 *     not connected, no answer in time). After a timeout the write may or may not have happened,
 *     but it never happens later: the command's deadline is the request's, and the OT agent
 *     executes nothing past it.
 */
import { DmzError, ERROR_MESSAGES, isErrorCode, type ErrorCode } from '../../relay/protocol/errors.ts';
import { isAgentName } from '../../relay/protocol/identity.ts';
import { MAX_REQUEST_TIMEOUT_MS } from '../../relay/protocol/limits.ts';
import { validateTopic } from '../../relay/protocol/topics.ts';
import type { RelayLink } from '../link/relay-link.ts';
import { newNonce, signCommand, type SigningKey } from '../ot/writes/command.ts';
import { WriteCounts, type WriteCountsSnapshot } from '../ot/writes/write-counts.ts';
import type { WriteValue } from '../ot/sources/source.ts';

/** How long a write waits for its answer unless told: a device write is milliseconds, a PLC busy a few seconds. */
export const DEFAULT_WRITE_TIMEOUT_MS = 10_000;

export interface WriteCommand {
  /** The OT agent, by its certificate name (`press-7`). */
  readonly agent: string;
  /** The point's full topic (`press-7/line1/setpoint`). */
  readonly topic: string;
  readonly value: WriteValue;
  /** Default DEFAULT_WRITE_TIMEOUT_MS; at most MAX_REQUEST_TIMEOUT_MS. */
  readonly timeoutMs?: number;
  /** The command's nonce (newNonce()); a fresh one unless given, as by an audit that names it first. */
  readonly nonce?: string;
}

export interface WriteResult {
  readonly status: 'done' | 'refused' | 'failed';
  /** The catalog code of a refusal or failure; undefined when done. */
  readonly code: ErrorCode | undefined;
  readonly message: string;
}

/** What the client needs of the link: a session and a request in it. */
export type WriteLink = Pick<RelayLink, 'openSession' | 'request' | 'closed'>;

export interface WriteClientOptions {
  /** This IT agent's name: the commands' issuer. */
  readonly name: string;
  readonly key: SigningKey;
  /** The link to the relay now, if connected. */
  readonly link: () => WriteLink | undefined;
  readonly now?: () => number;
}

/** Codes of checks that said no: nothing was written, and sending it again changes nothing. */
const REFUSALS: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'AGENT_ERR_WRITE_MALFORMED',
  'AGENT_ERR_WRITE_WRONG_AUDIENCE',
  'AGENT_ERR_WRITE_READ_ONLY',
  'AGENT_ERR_WRITE_NOT_WRITER',
  'AGENT_ERR_WRITE_ISSUER_MISMATCH',
  'AGENT_ERR_WRITE_SIGNATURE_MISSING',
  'AGENT_ERR_WRITE_KEY_NOT_PINNED',
  'AGENT_ERR_WRITE_SIGNATURE_INVALID',
  'AGENT_ERR_WRITE_EXPIRED',
  'AGENT_ERR_WRITE_DEADLINE_TOO_FAR',
  'AGENT_ERR_WRITE_REPLAYED',
  'AGENT_ERR_WRITE_WRONG_TYPE',
  'AGENT_ERR_WRITE_OUT_OF_RANGE',
  'AGENT_ERR_WRITE_WINDOW_CLOSED',
  'RELAY_ERR_FORBIDDEN',
  'RELAY_ERR_INVALID_TOPIC',
]);

interface OpenSession {
  readonly link: WriteLink;
  readonly session: Promise<number>;
}

export class WriteClient {
  readonly #name: string;
  readonly #key: SigningKey;
  readonly #link: () => WriteLink | undefined;
  readonly #now: () => number;
  /** One session per OT agent, on the link it was opened on. */
  readonly #sessions = new Map<string, OpenSession>();
  readonly #counts = new WriteCounts();

  constructor(options: WriteClientOptions) {
    this.#name = options.name;
    this.#key = options.key;
    this.#link = options.link;
    this.#now = options.now ?? Date.now;
  }

  /** Sends one write and waits for its outcome. */
  async write(command: WriteCommand): Promise<WriteResult> {
    const result = await this.#write(command);
    if (result.code === undefined) this.#counts.done();
    else if (result.status !== 'done') this.#counts.notDone(result.status, result.code);
    return result;
  }

  /** Writes sent since start, by the outcome the OT agent (or the relay) gave (status and metrics). */
  stats(): WriteCountsSnapshot {
    return this.#counts.snapshot();
  }

  async #write(command: WriteCommand): Promise<WriteResult> {
    const problem = checkCommand(command);
    if (problem !== undefined)
      return { status: 'refused', code: 'AGENT_ERR_WRITE_MALFORMED', message: problem };
    const timeoutMs = command.timeoutMs ?? DEFAULT_WRITE_TIMEOUT_MS;
    const payload = await signCommand(
      {
        iss: this.#name,
        aud: command.agent,
        topic: command.topic,
        value: command.value,
        deadline: this.#now() + timeoutMs,
        nonce: command.nonce ?? newNonce(),
      },
      this.#key,
    );
    try {
      await this.#send(command, payload, timeoutMs);
      return { status: 'done', code: undefined, message: 'written' };
    } catch (error) {
      return resultOf(error, timeoutMs);
    }
  }

  /** The relay or the OT agent ended a session: the next write opens another. */
  sessionClosed(session: number): void {
    for (const [agent, open] of this.#sessions) {
      open.session.then(
        (id) => {
          if (id === session && this.#sessions.get(agent) === open) this.#sessions.delete(agent);
        },
        () => undefined,
      );
    }
  }

  /** The link is gone, and every session with it. */
  linkClosed(): void {
    this.#sessions.clear();
  }

  async #send(command: WriteCommand, payload: Uint8Array, timeoutMs: number): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const link = this.#link();
      if (link === undefined || link.closed)
        throw new DmzError('AGENT_ERR_LINK_CLOSED', 'not connected to the relay');
      const session = await this.#sessionWith(link, command.agent);
      try {
        await link.request(session, command.topic, payload, timeoutMs);
        return;
      } catch (error) {
        // The session ended before the relay took the request: nothing reached the OT agent, so
        // the same command (same nonce) may go once more in a new session.
        if (!(error instanceof DmzError && error.code === 'RELAY_ERR_NO_SUCH_SESSION') || attempt > 0)
          throw error;
        this.#forget(command.agent, link);
      }
    }
  }

  #sessionWith(link: WriteLink, agent: string): Promise<number> {
    const known = this.#sessions.get(agent);
    if (known !== undefined && known.link === link && !link.closed) return known.session;
    const session = link.openSession(agent, `${agent}/#`).then((opened) => opened.session);
    const open = { link, session };
    this.#sessions.set(agent, open);
    session.catch(() => {
      if (this.#sessions.get(agent) === open) this.#sessions.delete(agent);
    });
    return session;
  }

  #forget(agent: string, link: WriteLink): void {
    if (this.#sessions.get(agent)?.link === link) this.#sessions.delete(agent);
  }
}

function checkCommand(command: WriteCommand): string | undefined {
  if (!isAgentName(command.agent)) return 'agent must be an agent name (lower-case DNS label)';
  try {
    validateTopic(command.topic);
  } catch (error) {
    return `topic: ${(error as Error).message}`;
  }
  const { value, timeoutMs } = command;
  if (
    typeof value === 'number'
      ? !Number.isFinite(value)
      : typeof value !== 'boolean' && typeof value !== 'string'
  )
    return 'value must be a finite number, a boolean or a string';
  if (
    timeoutMs !== undefined &&
    !(Number.isInteger(timeoutMs) && timeoutMs >= 1 && timeoutMs <= MAX_REQUEST_TIMEOUT_MS)
  )
    return `timeoutMs must be an integer from 1 to ${MAX_REQUEST_TIMEOUT_MS}`;
  return undefined;
}

function resultOf(error: unknown, timeoutMs: number): WriteResult {
  const code: ErrorCode =
    error instanceof DmzError && isErrorCode(error.code) ? error.code : 'RELAY_ERR_INTERNAL';
  const message = error instanceof DmzError ? error.message : ERROR_MESSAGES.RELAY_ERR_INTERNAL;
  if (code === 'RELAY_ERR_TIMEOUT') {
    return {
      status: 'failed',
      code,
      message: `no answer within ${timeoutMs} ms: the write may have been done, and will not be done later`,
    };
  }
  return { status: REFUSALS.has(code) ? 'refused' : 'failed', code, message };
}

/**
 * The streams the log knows: each topic's small id (what a frame carries) and its sequence
 * counters. A stream is never forgotten, even once retention has deleted all its records, so its
 * sequence numbers never restart.
 */
import { isValidTopic } from '../../../relay/protocol/topics.ts';
import { MAX_STREAMS } from './limits.ts';
import { logError } from './log-errors.ts';

export interface StreamState {
  readonly id: number;
  readonly name: string;
  /** The last sequence number assigned to an append (durable or not yet). */
  assignedSeq: number;
  /** The last sequence number whose append is durable: what readers see. */
  durableSeq: number;
}

export class StreamTable {
  readonly #byName = new Map<string, StreamState>();
  readonly #byId = new Map<number, StreamState>();
  #nextId = 1;

  get size(): number {
    return this.#byName.size;
  }

  byName(name: string): StreamState | undefined {
    return this.#byName.get(name);
  }

  byId(id: number): StreamState | undefined {
    return this.#byId.get(id);
  }

  all(): IterableIterator<StreamState> {
    return this.#byName.values();
  }

  /** A new stream (the caller validated its name), or AGENT_ERR_LOG_TOO_MANY_STREAMS. */
  create(name: string): StreamState {
    if (this.#byName.size >= MAX_STREAMS) {
      throw logError('tooManyStreams', `the stream log keeps at most ${MAX_STREAMS} streams`);
    }
    return this.#add(this.#nextId, name, 0);
  }

  /**
   * What the disk says about a stream (a checkpoint, an index, a segment's frames): the highest
   * sequence number seen wins. An id or name that disagrees with an earlier source is damage.
   */
  restore(id: number, name: string, lastSeq: number): StreamState {
    const known = this.#byId.get(id);
    if (known === undefined && this.#byName.has(name)) throw conflict(name);
    if (known !== undefined && known.name !== name) throw conflict(name);
    if (!isValidTopic(name) || !Number.isSafeInteger(id) || id < 1) throw conflict(name);
    const stream = known ?? this.#add(id, name, lastSeq);
    stream.assignedSeq = Math.max(stream.assignedSeq, lastSeq);
    stream.durableSeq = stream.assignedSeq;
    return stream;
  }

  #add(id: number, name: string, lastSeq: number): StreamState {
    const stream: StreamState = { id, name, assignedSeq: lastSeq, durableSeq: lastSeq };
    this.#byName.set(name, stream);
    this.#byId.set(id, stream);
    this.#nextId = Math.max(this.#nextId, id + 1);
    return stream;
  }
}

function conflict(name: string): Error {
  return logError(
    'corrupt',
    `the log's records disagree about the stream id of one stream (${name.length} bytes)`,
  );
}

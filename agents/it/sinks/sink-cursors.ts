/**
 * A sink's cursors in two stages, as the JSON Lines file sink and the MQTT bridge keep them. A
 * write is first accepted: a new write must follow it, so writes queue up in order without waiting
 * for one another. It is held once it is safe (durable on disk, acknowledged by the broker): only
 * then do lastSeq and cursors() report it, and only what is held is saved for a restart. An OT
 * agent's log epochs (Sink.noteLogEpochs) go through the same two stages, in order with the writes.
 */
import { isNewOrigin, planCursors, setCursor } from './entry-checks.ts';
import { sinkError } from './sink-errors.ts';
import type { SinkEntry } from './sink.ts';

/**
 * Topics a sink keeps a cursor for. Cursors are kept forever, in memory and in every checkpoint
 * (~100 bytes each); an IT agent consumes the streams of a few OT agents, hundreds each.
 */
export const MAX_SINK_TOPICS = 65_536;

/** An OT agent's log epochs, newest first, as a sink holds them. */
export interface SinkOrigin {
  readonly agent: string;
  readonly epochs: readonly string[];
}

export class SinkCursors {
  #accepted: Map<string, number>;
  readonly #held: Map<string, number>;
  #acceptedOrigins: Map<string, readonly string[]>;
  readonly #heldOrigins: Map<string, readonly string[]>;

  /** Starts from what a restart found held. */
  constructor(cursors: ReadonlyMap<string, number>, origins: ReadonlyMap<string, readonly string[]>) {
    this.#accepted = new Map(cursors);
    this.#held = new Map(cursors);
    this.#acceptedOrigins = new Map(origins);
    this.#heldOrigins = new Map(origins);
  }

  /**
   * Where each topic `entries` touch stands after them, checked against what was accepted
   * (entry-checks.ts planCursors) and against the topic bound. Changes nothing: the sink accepts
   * the write once its own checks passed too.
   */
  plan(entries: readonly SinkEntry[]): Map<string, number> {
    const advance = planCursors(entries, (topic) => this.#accepted.get(topic) ?? 0);
    let newTopics = 0;
    for (const topic of advance.keys()) if (!this.#accepted.has(topic)) newTopics++;
    if (this.#accepted.size + newTopics > MAX_SINK_TOPICS) {
      throw sinkError('entry', `the sink keeps cursors for at most ${MAX_SINK_TOPICS} topics`);
    }
    return advance;
  }

  accept(advance: ReadonlyMap<string, number>): void {
    for (const [topic, seq] of advance) setCursor(this.#accepted, topic, seq);
  }

  /** Accepts `epochs` for `agent` and returns them as an origin; undefined when they are not new. */
  acceptOrigin(agent: string, epochs: readonly string[]): SinkOrigin | undefined {
    if (!isNewOrigin(this.#acceptedOrigins, agent, epochs, MAX_SINK_TOPICS)) return undefined;
    const origin = { agent, epochs: [...epochs] };
    this.#acceptedOrigins.set(agent, origin.epochs);
    return origin;
  }

  hold(advance: ReadonlyMap<string, number>): void {
    for (const [topic, seq] of advance) setCursor(this.#held, topic, seq);
  }

  holdOrigin(origin: SinkOrigin): void {
    this.#heldOrigins.set(origin.agent, origin.epochs);
  }

  /** What was accepted and will never be held is given up: new writes follow what is held. */
  forgetUnheld(): void {
    this.#accepted = new Map(this.#held);
    this.#acceptedOrigins = new Map(this.#heldOrigins);
  }

  lastSeq(topic: string): number {
    return this.#held.get(topic) ?? 0;
  }

  /** What is held, live: a copy is the caller's to take if it keeps it. */
  get held(): ReadonlyMap<string, number> {
    return this.#held;
  }

  get heldOrigins(): ReadonlyMap<string, readonly string[]> {
    return this.#heldOrigins;
  }

  logEpochs(agent: string): readonly string[] {
    return this.#heldOrigins.get(agent) ?? [];
  }
}

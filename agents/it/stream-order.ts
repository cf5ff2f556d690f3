/**
 * The IT consumer's view of each stream: the next sequence number it expects, so that every point
 * reaches the sink exactly once and in order, whatever mix of live and replayed batches arrives
 * (the ordered consumer of nats.js JetStream has the same rule). A batch that overlaps what is
 * held is trimmed to what is new; a batch that starts beyond the next expected point leaves a hole,
 * which is not written around but noted, so the next replay round fills it from the OT agent's log.
 */
import { decodePointBatch } from '../points/batch.ts';
import { decodeStreamRecord, type StreamRecord } from '../points/stream-record.ts';
import type { SinkEntry } from './sinks/sink.ts';

export interface Admission {
  /** New entries for the sink, in order (possibly none). */
  readonly entries: readonly SinkEntry[];
  /** The batch started beyond the next expected point: something in between is missing. */
  readonly hole: boolean;
  /** Set when the batch was the end of a replay round. */
  readonly replayEnd: { readonly more: boolean } | undefined;
}

export interface DeliveredBatch {
  readonly topic: string;
  readonly seq: number;
  readonly count: number;
  readonly points: Uint8Array;
}

export class StreamOrder {
  /** Last sequence admitted per topic (durable in the sink, or on its way there). */
  readonly #admitted = new Map<string, number>();
  /** Per topic with a hole: the last sequence known to exist beyond it. */
  readonly #holes = new Map<string, number>();

  constructor(held: ReadonlyMap<string, number>) {
    this.reset(held);
  }

  /** Back to what the sink holds (after a failed write: what was admitted may not be there). */
  reset(held: ReadonlyMap<string, number>): void {
    this.#admitted.clear();
    this.#holes.clear();
    for (const [topic, seq] of held) this.#admitted.set(topic, seq);
  }

  lastSeq(topic: string): number {
    return this.#admitted.get(topic) ?? 0;
  }

  /** Topic -> last sequence admitted, for the resume cursor. */
  positions(): ReadonlyMap<string, number> {
    return this.#admitted;
  }

  /** Holes not yet filled: a replay round is still owed. */
  hasHoles(): boolean {
    return this.#holes.size > 0;
  }

  /**
   * Decodes a delivered batch and keeps what is new; with no `room` (the sink is behind) keeps
   * nothing and notes what the batch held as owed. Throws if the batch does not decode.
   */
  admit(batch: DeliveredBatch, room = true, gapsBelieved = true): Admission {
    const records = decodePointBatch(batch.points, batch.count).map((bytes) => decodeStreamRecord(bytes));
    const first = records[0];
    if (first?.kind === 'replayEnd') {
      return { entries: [], hole: false, replayEnd: { more: first.more } };
    }
    const last = this.lastSeq(batch.topic);
    const entries: SinkEntry[] = [];
    if (!room || batch.seq > last + 1) {
      // A batch already held owes nothing, room or not: only one that reaches past it is a hole.
      const hole = this.#noteHole(batch.topic, batch.seq + batch.count - 1, records);
      return { entries, hole, replayEnd: undefined };
    }
    let seq = batch.seq;
    let held = last;
    for (const record of records) {
      held = this.#admitRecord(batch.topic, seq, held, record, entries, gapsBelieved);
      seq = record.kind === 'gap' ? Math.max(seq, record.to) + 1 : seq + 1;
    }
    this.#admitted.set(batch.topic, held);
    const beyond = this.#holes.get(batch.topic);
    if (beyond !== undefined && held >= beyond) this.#holes.delete(batch.topic);
    return { entries, hole: false, replayEnd: undefined };
  }

  #admitRecord(
    topic: string,
    seq: number,
    held: number,
    record: StreamRecord,
    entries: SinkEntry[],
    gapsBelieved: boolean,
  ): number {
    switch (record.kind) {
      case 'point':
        if (seq !== held + 1) return held;
        entries.push({ kind: 'point', point: { topic, seq, ...record.reading } });
        return seq;
      case 'gap':
        // A gap from `seq` to `to`; only the part beyond what is held is news.
        if (!gapsBelieved || record.to <= held || seq > held + 1) return held;
        entries.push({ kind: 'gap', topic, from: held + 1, to: record.to, reason: record.reason });
        return record.to;
      case 'replayEnd':
        return held;
    }
  }

  /** Notes what the batch held beyond what is admitted as owed; false if it held nothing new. */
  #noteHole(topic: string, lastInBatch: number, records: readonly StreamRecord[]): boolean {
    const gapEnd = records.reduce(
      (end, record) => (record.kind === 'gap' ? Math.max(end, record.to) : end),
      0,
    );
    const beyond = Math.max(lastInBatch, gapEnd);
    if (beyond <= this.lastSeq(topic)) return false;
    this.#holes.set(topic, Math.max(this.#holes.get(topic) ?? 0, beyond));
    return true;
  }
}

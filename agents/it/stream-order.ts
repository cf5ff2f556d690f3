/**
 * The IT consumer's view of each stream: the next sequence number it expects, so that every point
 * reaches the sink exactly once and in order, whatever mix of live and replayed batches arrives
 * (the ordered consumer of nats.js JetStream has the same rule). A batch that overlaps what is
 * held is trimmed to what is new; a batch that starts beyond the next expected point leaves a hole,
 * which is not written around but noted, so the next replay round fills it from the OT agent's log.
 *
 * A reset (the OT agent's log no longer has what the consumer holds of a stream: it was re-created
 * or restored from an older copy) takes a stream's position back, so the log's new points with
 * old numbers are not taken for duplicates. Like a gap, it is believed only inside a replay round,
 * where the OT agent measured it against the cursor the consumer sent.
 */
import { decodePointBatch } from '../points/batch.ts';
import { streamKey } from '../points/resume-cursor.ts';
import { decodeStreamRecord, type StreamRecord } from '../points/stream-record.ts';
import { DmzError } from '../../relay/protocol/errors.ts';
import type { SinkEntry } from './sinks/sink.ts';

export interface Admission {
  /** New entries for the sink, in order (possibly none). */
  readonly entries: readonly SinkEntry[];
  /** The batch started beyond the next expected point: something in between is missing. */
  readonly hole: boolean;
  /** Set when the batch was the end of a replay round. */
  readonly replayEnd: { readonly more: boolean } | undefined;
  /** Set when the batch named the OT log's epochs, newest first (a round's origin). */
  readonly origin: readonly string[] | undefined;
}

/** A reset's reason when the OT agent gave none: a sink line always says why. */
const UNSTATED_RESET = 'the OT log reset this stream';

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
  /** Each topic's key in cursors, hashed once: resets name streams by key. */
  readonly #keys = new Map<string, string>();

  constructor(held: ReadonlyMap<string, number>) {
    this.reset(held);
  }

  /** Back to what the sink holds (after a failed write: what was admitted may not be there). */
  reset(held: ReadonlyMap<string, number>): void {
    this.#admitted.clear();
    this.#holes.clear();
    for (const [topic, seq] of held) if (seq > 0) this.#admitted.set(topic, seq);
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
   * Decodes a delivered batch and keeps what is new; with no `room` (the sink is behind, or the
   * session's origin is not known yet) keeps no points and notes what the batch held as owed.
   * Gaps, resets and origins count only `inRound`. Throws if the batch does not decode.
   */
  admit(batch: DeliveredBatch, room = true, inRound = true): Admission {
    const records = decodePointBatch(batch.points, batch.count).map((bytes) => decodeStreamRecord(bytes));
    const first = records[0];
    const nothing = { entries: [], hole: false, replayEnd: undefined, origin: undefined };
    if (first?.kind === 'replayEnd') return { ...nothing, replayEnd: { more: first.more } };
    if (first?.kind === 'reset' || first?.kind === 'origin') {
      return inRound ? this.#admitResets(records) : nothing;
    }
    const last = this.lastSeq(batch.topic);
    const entries: SinkEntry[] = [];
    if (!room || batch.seq > last + 1) {
      // A batch already held owes nothing, room or not: only one that reaches past it is a hole.
      const hole = this.#noteHole(batch.topic, batch.seq + batch.count - 1, records);
      return { ...nothing, hole };
    }
    let seq = batch.seq;
    let held = last;
    for (const record of records) {
      held = this.#admitRecord(batch.topic, seq, held, record, entries, inRound);
      seq = record.kind === 'gap' ? Math.max(seq, record.to) + 1 : seq + 1;
    }
    this.#admitted.set(batch.topic, held);
    const beyond = this.#holes.get(batch.topic);
    if (beyond !== undefined && held >= beyond) this.#holes.delete(batch.topic);
    return { ...nothing, entries };
  }

  /**
   * A round's resets and origin: each reset takes its stream back to `from` - 1 (a stream this
   * consumer holds nothing of beyond that is left as it is: a reset never moves forward).
   */
  #admitResets(records: readonly StreamRecord[]): Admission {
    const entries: SinkEntry[] = [];
    let origin: readonly string[] | undefined;
    let byKey: Map<string, string> | undefined;
    for (const record of records) {
      if (record.kind === 'origin') {
        origin = record.epochs;
        continue;
      }
      if (record.kind !== 'reset') {
        throw new DmzError('AGENT_ERR_STREAM_RECORD', 'a batch of resets holds only resets and an origin');
      }
      byKey ??= this.#topicsByKey();
      const topic = byKey.get(record.key);
      if (topic === undefined) continue;
      const held = this.lastSeq(topic);
      if (record.from > held) continue;
      entries.push({
        kind: 'reset',
        topic,
        from: record.from,
        held,
        reason: record.reason || UNSTATED_RESET,
      });
      if (record.from > 1) this.#admitted.set(topic, record.from - 1);
      else this.#admitted.delete(topic);
      this.#holes.delete(topic);
    }
    return { entries, hole: false, replayEnd: undefined, origin };
  }

  #topicsByKey(): Map<string, string> {
    const byKey = new Map<string, string>();
    for (const topic of this.#admitted.keys()) {
      let key = this.#keys.get(topic);
      if (key === undefined) {
        key = streamKey(topic);
        this.#keys.set(topic, key);
      }
      byKey.set(key, topic);
    }
    return byKey;
  }

  #admitRecord(
    topic: string,
    seq: number,
    held: number,
    record: StreamRecord,
    entries: SinkEntry[],
    inRound: boolean,
  ): number {
    switch (record.kind) {
      case 'point':
        if (seq !== held + 1) return held;
        entries.push({ kind: 'point', point: { topic, seq, ...record.reading } });
        return seq;
      case 'gap':
        // A gap from `seq` to `to`; only the part beyond what is held is news.
        if (!inRound || record.to <= held || seq > held + 1) return held;
        entries.push({ kind: 'gap', topic, from: held + 1, to: record.to, reason: record.reason });
        return record.to;
      case 'replayEnd':
      case 'origin':
      case 'reset':
        // Markers come in batches of their own (admit); one among points is ignored.
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

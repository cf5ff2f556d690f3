/**
 * What every IT sink is (DESIGN.md, "Data that must not be lost"): the consumer dedupes and orders
 * a stream's points by sequence number and hands a sink only what is new, in order; the sink's own
 * durable state is the consumer's cursor. So `lastSeq` is what the sink holds on disk, and after a
 * crash the sink still knows it exactly: a replay from lastSeq + 1 writes nothing twice and loses
 * nothing. Backends (the file sink, the MQTT bridge, the recent-values store) sit behind this one
 * interface, as smallstep's CA services do (cas/apiv1/services.go).
 */
import type { Point } from '../../points/point.ts';

export type SinkEntry =
  | { readonly kind: 'point'; readonly point: Point }
  /** Points `from` .. `to` of `topic` are gone at the source (`reason`: "retention"): never a silent hole. */
  | {
      readonly kind: 'gap';
      readonly topic: string;
      readonly from: number;
      readonly to: number;
      readonly reason: string;
    }
  /**
   * The OT agent's log no longer has what the sink holds of `topic` from `from` to `held` (its
   * lastSeq): the log was re-created or restored from an older copy, and those numbers now name
   * other points. The stream goes on at `from`; lastSeq moves back to `from` - 1.
   */
  | {
      readonly kind: 'reset';
      readonly topic: string;
      readonly from: number;
      readonly held: number;
      readonly reason: string;
    };

export interface Sink {
  readonly name: string;
  /** Last sequence durably held for `topic` (0 if none). */
  lastSeq(topic: string): number;
  /** Every topic with its last sequence. */
  cursors(): ReadonlyMap<string, number>;
  /**
   * Durably writes entries, in order; resolves once they are on disk (fsync). Each point must be
   * lastSeq(topic)+1 (counting writes accepted and still in flight); a gap must start at
   * lastSeq(topic)+1 and moves lastSeq to `to`; a reset must name lastSeq(topic) as `held`, go
   * back (`from` at most `held`), and moves lastSeq to `from` - 1. Anything else is refused with AGENT_ERR_SINK_ORDER
   * and nothing of that call is written. A write that rejects for a storage failure may or may not
   * be held: after a reopen, lastSeq says which.
   */
  write(entries: readonly SinkEntry[]): Promise<void>;
  /**
   * The log epochs (newest first) of OT agent `agent` that the points held of its streams came
   * from, as noteLogEpochs left them; [] when none are known (a new sink). Every sink keeps them
   * with its cursors: a cursor that names no epoch lets the OT agent check only that no position
   * is ahead of its log, and a restored log that has grown past the cursor would go unnoticed.
   */
  logEpochs(agent: string): readonly string[];
  /**
   * Keeps `epochs` for `agent` (AGENT_ERR_SINK_ENTRY for a list a cursor cannot carry), held in
   * order with writes: after every write called before it, and before any write called after it,
   * in what the sink holds and in what it finds again after a restart.
   */
  noteLogEpochs(agent: string, epochs: readonly string[]): Promise<void>;
  close(): Promise<void>;
  /** Optional: what the sink says about itself in the agent's status (a broker connection, say). */
  report?(): SinkReport;
  /**
   * Optional, for sinks that show whether their OT agents are reachable (the MQTT bridge's status
   * topics and Sparkplug device deaths): how to ask, OT agent name -> a consumer of this sink has
   * its session with it now. Called once, after the consumers are made.
   */
  followPeers?(peers: () => ReadonlyMap<string, boolean>): void;
}

/** A sink's status: its type and counters of its own, plain JSON values. */
export interface SinkReport {
  readonly type: string;
  readonly [counter: string]: string | number | boolean | undefined;
}

/**
 * What every IT sink is (DESIGN.md, "Data that must not be lost"): the consumer dedupes and orders
 * a stream's points by sequence number and hands a sink only what is new, in order; the sink's own
 * durable state is the consumer's cursor. So `lastSeq` is what the sink holds on disk, and after a
 * crash the sink still knows it exactly: a replay from lastSeq + 1 writes nothing twice and loses
 * nothing. Backends (this file sink, later an MQTT bridge and an HTTP store) sit behind this one
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
   * lastSeq(topic)+1 and moves lastSeq to `to`. Anything else is refused with AGENT_ERR_SINK_ORDER
   * and nothing of that call is written. A write that rejects for a storage failure may or may not
   * be held: after a reopen, lastSeq says which.
   */
  write(entries: readonly SinkEntry[]): Promise<void>;
  close(): Promise<void>;
}

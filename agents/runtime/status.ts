/**
 * What a running agent says about itself: one snapshot, written to `<state>/status.json` every
 * STATUS_INTERVAL_MS (and served as JSON on the admin listener), read by `dmz-agent status`, so a
 * plant engineer sees the agent's state on an OT host that has no admin listener at all.
 */
import { join } from 'node:path';
import { replaceFileDurably } from '../../relay/protocol/durable-files.ts';
import type { SinkReport } from '../it/sinks/sink.ts';
import type { WriteCountsSnapshot } from '../ot/writes/write-counts.ts';

export const STATUS_FILE = 'status.json';
/** Often enough to read as "now" on a screen, rarely enough to cost nothing. */
export const STATUS_INTERVAL_MS = 2_000;
/** A status screen lists at most this many streams; the JSON says how many there are. */
export const MAX_STATUS_STREAMS = 1_000;

export interface StreamPosition {
  readonly topic: string;
  readonly lastSeq: number;
}

export interface AgentStatus {
  readonly name: string;
  readonly role: 'ot' | 'it';
  readonly pid: number;
  readonly startedAt: string;
  readonly updatedAt: string;
  readonly relay: {
    readonly url: string;
    readonly connected: boolean;
    readonly since: string;
    readonly connects: number;
    readonly lastError: string | undefined;
    /**
     * The relay's last refusal of this agent's certificate (RELAY_ERR_REVOKED) and when, kept
     * until a connection succeeds: later attempts fail at TLS with no reason of their own.
     */
    readonly lastRefusal?: { readonly code: string; readonly at: string };
  };
  readonly certificate: { readonly serial: string; readonly notAfter: string };
  readonly ot?: {
    readonly log: { readonly bytes: number; readonly maxBytes: number; readonly streams: number };
    readonly pointsLogged: number;
    readonly pointsSent: number;
    readonly pointsLeftToReplay: number;
    readonly replay: {
      readonly rounds: number;
      readonly pointsReplayed: number;
      readonly gaps: number;
      /** Streams told their consumer held what this log does not have (re-created or restored). */
      readonly resets: number;
    };
    readonly sessions: number;
    readonly sources: readonly {
      readonly name: string;
      readonly readings: number;
      readonly lastError: string | undefined;
    }[];
    readonly streams: readonly StreamPosition[];
    readonly streamCount: number;
  };
  /** Write commands since start, by outcome and code: answered (OT) or sent (IT). */
  readonly writes?: WriteCountsSnapshot;
  /** Tunnel streams at this end (agents/tunnels/): the entrances (IT) or the exit (OT). */
  readonly tunnels?: {
    readonly open: number;
    readonly bytesSent: number;
    readonly bytesReceived: number;
    readonly bufferedBytes: number;
    readonly refused: number;
  };
  readonly it?: {
    readonly consumers: readonly {
      readonly name: string;
      readonly from: string;
      readonly filter: string;
      readonly sink: string;
      readonly state: string;
      readonly session: number | undefined;
      readonly rounds: number;
      readonly pointsWritten: number;
      readonly gapsWritten: number;
      /** Streams reset because the OT agent's log no longer had what the sink held. */
      readonly resetsWritten: number;
      readonly holes: number;
      readonly droppedNotices: number;
      readonly lastError: string | undefined;
      readonly streams: readonly StreamPosition[];
      readonly streamCount: number;
    }[];
    /** What sinks report of themselves (sink.ts SinkReport): an MQTT bridge's connection and counters. */
    readonly sinks?: readonly ({ readonly name: string } & SinkReport)[];
  };
}

/** Written whole (temp file, then rename), so a reader never sees half of one. */
export async function writeStatus(stateDir: string, status: AgentStatus): Promise<void> {
  await replaceFileDurably(join(stateDir, STATUS_FILE), `${JSON.stringify(status, null, 2)}\n`);
}

/** The first MAX_STATUS_STREAMS positions, by topic. */
export function streamPositions(positions: Iterable<readonly [string, number]>): StreamPosition[] {
  return [...positions]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .slice(0, MAX_STATUS_STREAMS)
    .map(([topic, lastSeq]) => ({ topic, lastSeq }));
}

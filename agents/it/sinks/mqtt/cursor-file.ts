/**
 * What the bridge keeps across restarts, in `<agent state>/sinks/<sink name>/cursors.json`: the
 * cursor the broker acknowledged, per stream, the OT agents' log epochs those points came from,
 * and the last Sparkplug bdSeq. It is rewritten
 * (crash-safe: written aside, renamed) every CURSOR_SAVE_MS while it changes and at close, so it
 * may lag what the broker has: after a crash the OT agent replays from an older cursor and the
 * broker gets some points again (subscribers drop them by `seq`). It never runs ahead: a point is
 * in the file only after its PUBACK.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { quote } from '../../../../relay/protocol/command-line.ts';
import { replaceFileDurably } from '../../../../relay/protocol/durable-files.ts';
import { isAgentName } from '../../../../relay/protocol/identity.ts';
import { isValidTopic } from '../../../../relay/protocol/topics.ts';
import { isEpochList } from '../../../points/resume-cursor.ts';
import { sinkError, sinkStorageFailure } from '../sink-errors.ts';

export const CURSOR_FILE = 'cursors.json';
/** Often enough that a crash resends about a second of points, rarely enough to cost nothing. */
export const CURSOR_SAVE_MS = 1_000;
/** Cursors of 65,536 topics are ~5 MB of JSON; a file larger than this is not ours. */
const MAX_CURSOR_FILE_BYTES = 32 * 1024 * 1024;
const FORMAT_VERSION = 1;

export interface BridgeState {
  readonly cursors: ReadonlyMap<string, number>;
  /** OT agent -> the log epochs its held points came from (sink.ts noteLogEpochs). */
  readonly origins: ReadonlyMap<string, readonly string[]>;
  /** The bdSeq of the last Sparkplug connection attempt (0-255), or undefined before the first. */
  readonly bdSeq: number | undefined;
}

/** Where a sink of the agent keeps its state: `<agent state>/sinks/<sink name>`. */
export function sinkStateDir(agentState: string, sinkName: string): string {
  return join(agentState, 'sinks', sinkName);
}

export async function readBridgeState(dir: string): Promise<BridgeState> {
  const path = join(dir, CURSOR_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') {
      return { cursors: new Map(), origins: new Map(), bdSeq: undefined };
    }
    throw sinkStorageFailure(`reading ${quote(path)}`, cause);
  }
  const state = text.length <= MAX_CURSOR_FILE_BYTES ? parseState(text) : undefined;
  if (state === undefined) {
    throw sinkError('corrupt', `the bridge's cursor file ${quote(path)} is damaged`, {
      hint: `remove it to start again from what the OT agents still hold (the broker then gets those points again)`,
    });
  }
  return state;
}

export async function writeBridgeState(dir: string, state: BridgeState): Promise<void> {
  const path = join(dir, CURSOR_FILE);
  const contents = JSON.stringify({
    version: FORMAT_VERSION,
    bdSeq: state.bdSeq ?? null,
    cursors: Object.fromEntries(state.cursors),
    origins: Object.fromEntries(state.origins),
  });
  try {
    await replaceFileDurably(path, `${contents}\n`);
  } catch (cause) {
    throw sinkStorageFailure(`writing ${quote(path)}`, cause);
  }
}

function parseState(text: string): BridgeState | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { version, bdSeq, cursors, origins } = value as Record<string, unknown>;
  if (version !== FORMAT_VERSION || typeof cursors !== 'object' || cursors === null) return undefined;
  if (typeof origins !== 'object' || origins === null) return undefined;
  if (bdSeq !== null && !(Number.isInteger(bdSeq) && (bdSeq as number) >= 0 && (bdSeq as number) <= 255)) {
    return undefined;
  }
  const map = new Map<string, number>();
  for (const [topic, seq] of Object.entries(cursors)) {
    if (!isValidTopic(topic) || !Number.isSafeInteger(seq) || (seq as number) < 0) return undefined;
    map.set(topic, seq as number);
  }
  const epochs = new Map<string, readonly string[]>();
  for (const [agent, list] of Object.entries(origins)) {
    if (!isAgentName(agent) || !Array.isArray(list) || list.length === 0 || !isEpochList(list))
      return undefined;
    epochs.set(agent, list);
  }
  return { cursors: map, origins: epochs, bdSeq: bdSeq === null ? undefined : (bdSeq as number) };
}

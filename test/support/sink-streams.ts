/**
 * What a JSON Lines sink directory holds, read as a historian's file collector reads it: every
 * line of every `points-*.jsonl` file, in file order, summed up per stream so that a test can say
 * in one line what is wrong (points missing, duplicated, out of order) instead of printing a
 * sequence of thousands of numbers.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

const DATA_FILE = /^points-.*\.jsonl$/;

export interface SinkStream {
  /** Sequence numbers of the point lines, in file order. */
  readonly seqs: number[];
  /** Source time of the last point line, ms since the epoch. */
  lastSourceTime: number;
}

export interface SinkContents {
  readonly streams: Map<string, SinkStream>;
  /** Gap lines (`{"topic":..,"gap":{..}}`), as they are. */
  readonly gaps: string[];
  /** Lines that are no JSON object with a topic: a torn or foreign line. */
  readonly unreadable: string[];
}

export interface StreamSummary {
  readonly points: number;
  readonly duplicates: number;
  /** Sequence numbers of 1..expected absent. */
  readonly missing: number;
  /** Lines whose sequence is not above the line before. */
  readonly outOfOrder: number;
  /** Sequence numbers above `expected`. */
  readonly beyond: number;
}

export async function readSinkContents(dir: string): Promise<SinkContents> {
  const contents: SinkContents = { streams: new Map(), gaps: [], unreadable: [] };
  let names: string[];
  try {
    names = (await readdir(dir)).filter((name) => DATA_FILE.test(name)).sort();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return contents;
    throw error;
  }
  for (const name of names) {
    for (const line of (await readFile(join(dir, name), 'utf8')).split('\n')) {
      if (line !== '') readLine(line, contents);
    }
  }
  return contents;
}

function readLine(line: string, contents: SinkContents): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    contents.unreadable.push(line);
    return;
  }
  const entry = parsed as { topic?: unknown; seq?: unknown; gap?: unknown; sourceTime?: unknown };
  if (typeof parsed !== 'object' || parsed === null || typeof entry.topic !== 'string') {
    contents.unreadable.push(line);
  } else if (entry.gap !== undefined) {
    contents.gaps.push(line);
  } else if (typeof entry.seq !== 'number') {
    contents.unreadable.push(line);
  } else {
    let stream = contents.streams.get(entry.topic);
    if (stream === undefined) {
      stream = { seqs: [], lastSourceTime: 0 };
      contents.streams.set(entry.topic, stream);
    }
    stream.seqs.push(entry.seq);
    stream.lastSourceTime = Date.parse(String(entry.sourceTime));
  }
}

/** How far `seqs` is from exactly 1..expected, in order, once each. */
export function summarizeStream(seqs: readonly number[], expected: number): StreamSummary {
  const seen = new Set<number>();
  let duplicates = 0;
  let outOfOrder = 0;
  let beyond = 0;
  seqs.forEach((seq, index) => {
    if (seen.has(seq)) duplicates++;
    seen.add(seq);
    if (index > 0 && seq <= (seqs[index - 1] ?? 0)) outOfOrder++;
    if (seq > expected) beyond++;
  });
  let missing = 0;
  for (let seq = 1; seq <= expected; seq++) if (!seen.has(seq)) missing++;
  return { points: seqs.length, duplicates, missing, outOfOrder, beyond };
}

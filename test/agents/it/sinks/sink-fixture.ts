/** Shared pieces of the sink tests: a temp directory per test, deterministic points, the files' lines. */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import type { Point } from '../../../../agents/points/point.ts';
import type { SinkEntry } from '../../../../agents/it/sinks/sink.ts';

/** A fresh directory under the system temp dir (the sink makes `sink` in it), removed when the test ends. */
export async function makeTempDir(t: TestContext): Promise<string> {
  const parent = await mkdtemp(join(tmpdir(), 'dmz-sink-'));
  t.after(() => rm(parent, { recursive: true, force: true }));
  return join(parent, 'sink');
}

/** 1 December 2026, 11:00 UTC: the day the tests write on unless they move the clock. */
export const TEST_DAY_MS = Date.UTC(2026, 11, 1, 11);
export const DAY_MS = 86_400_000;

/** The point a test writes as `seq` of `topic`: every value kind and quality, derived from both. */
export function pointFor(topic: string, seq: number): Point {
  const sourceTime = TEST_DAY_MS + seq * 1000;
  switch (seq % 5) {
    case 0:
      return { topic, seq, value: seq + 0.25, quality: 'good', sourceTime };
    case 1:
      return { topic, seq, value: -seq, quality: 'good', sourceTime };
    case 2:
      return { topic, seq, value: seq % 2 === 0, quality: 'bad', reason: 'timeout', sourceTime };
    case 3:
      return { topic, seq, value: `batch "${seq}"\n`, quality: 'uncertain', sourceTime };
    default:
      return { topic, seq, value: [seq, seq / 8], quality: 'good', sourceTime };
  }
}

export function pointEntry(topic: string, seq: number): SinkEntry {
  return { kind: 'point', point: pointFor(topic, seq) };
}

export function pointEntries(topic: string, first: number, count: number): SinkEntry[] {
  return Array.from({ length: count }, (_, index) => pointEntry(topic, first + index));
}

export function gapEntry(topic: string, from: number, to: number, reason = 'retention'): SinkEntry {
  return { kind: 'gap', topic, from, to, reason };
}

/** The data files in `dir`, oldest first. */
export async function dataFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => /^points-.*\.jsonl$/.test(name)).sort();
}

/** Every line of every data file, oldest first, parsed with JSON.parse. */
export async function readAllLines(dir: string): Promise<Record<string, unknown>[]> {
  const lines: Record<string, unknown>[] = [];
  for (const file of await dataFiles(dir)) {
    const text = await readFile(join(dir, file), 'utf8');
    if (text.length > 0 && !text.endsWith('\n')) throw new Error(`${file} does not end with a newline`);
    for (const line of text.split('\n').slice(0, -1)) lines.push(JSON.parse(line) as Record<string, unknown>);
  }
  return lines;
}

/** The error code a promise rejects with, or 'resolved'. */
export async function rejectionCode(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'resolved';
  } catch (error) {
    return String((error as { code?: unknown }).code ?? error);
  }
}

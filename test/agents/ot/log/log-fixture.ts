/** Shared pieces of the stream log tests: a temp directory per test, deterministic records, a reader. */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { DmzError } from '../../../../relay/protocol/errors.ts';
import {
  openStreamLog,
  type LogRecord,
  type StreamLog,
  type StreamLogOptions,
} from '../../../../agents/ot/log/stream-log.ts';

/** A fresh directory under the system temp dir, removed when the test ends. */
export async function makeTempDir(t: TestContext): Promise<string> {
  const parent = await mkdtemp(join(tmpdir(), 'dmz-stream-log-'));
  t.after(() => rm(parent, { recursive: true, force: true }));
  return join(parent, 'log');
}

/** Small limits so tests cross segments and hit retention cheaply. */
export const SMALL_LOG = { maxBytes: 1024 * 1024, maxAgeMs: 3_600_000, segmentBytes: 4096 } as const;

export function openTestLog(dir: string, options: Partial<StreamLogOptions> = {}): Promise<StreamLog> {
  return openStreamLog({ dir, ...SMALL_LOG, ...options });
}

/** The record a test writes as `seq` of `stream`: 15 to 60 bytes derived from both, so any mix-up shows. */
export function recordFor(stream: string, seq: number): Uint8Array {
  const digest = createHash('sha256').update(`${stream}#${seq}`).digest();
  const length = 15 + (seq % 46);
  const record = new Uint8Array(length);
  for (let index = 0; index < length; index++) record[index] = digest[index % digest.length]!;
  return record;
}

export function recordsFor(stream: string, firstSeq: number, count: number): Uint8Array[] {
  return Array.from({ length: count }, (_, index) => recordFor(stream, firstSeq + index));
}

/** Every retained record of `stream` from `fromSeq`, page by page. */
export async function readAll(
  log: StreamLog,
  stream: string,
  fromSeq = 1,
  pageSize = 97,
): Promise<LogRecord[]> {
  const records: LogRecord[] = [];
  for (let next = fromSeq; ;) {
    const page = await log.read(stream, next, pageSize);
    records.push(...page.records);
    if (page.records.length === 0) return records;
    next = page.nextSeq;
  }
}

/** The error code a promise rejects with, or 'resolved'. */
export async function rejectionCode(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'resolved';
  } catch (error) {
    return error instanceof DmzError ? error.code : `not a DmzError: ${String(error)}`;
  }
}

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { FRAME_HEADER_BYTES } from '../../../../agents/ot/log/frame.ts';
import { SEGMENT_HEADER_BYTES } from '../../../../agents/ot/log/segment-file.ts';
import { makeTempDir, openTestLog, readAll, recordFor, recordsFor } from './log-fixture.ts';

const STREAM = 'press-7/torn';
const SEGMENT = '0000000001.seg';
/** Three appends of 3, 2 and 1 records: three records frames after the stream's definition. */
const APPENDS = [3, 2, 1] as const;

interface Written {
  readonly segment: Buffer;
  /** Frame ends: after the definition, then after each records frame; and the last seq at each. */
  readonly boundaries: readonly { readonly end: number; readonly lastSeq: number }[];
}

async function writeReference(t: TestContext): Promise<Written> {
  const dir = await makeTempDir(t);
  const log = await openTestLog(dir);
  let seq = 1;
  let end = SEGMENT_HEADER_BYTES + FRAME_HEADER_BYTES + Buffer.byteLength(STREAM);
  const boundaries = [
    { end: SEGMENT_HEADER_BYTES, lastSeq: 0 },
    { end, lastSeq: 0 },
  ];
  for (const count of APPENDS) {
    const records = recordsFor(STREAM, seq, count);
    await log.append(STREAM, records);
    seq += count;
    end += FRAME_HEADER_BYTES + records.reduce((sum, record) => sum + 2 + record.byteLength, 0);
    boundaries.push({ end, lastSeq: seq - 1 });
  }
  await log.close();
  const segment = await readFile(join(dir, SEGMENT));
  assert.equal(segment.byteLength, end, 'the segment holds exactly the frames the format describes');
  return { segment, boundaries };
}

/** Opens a copy of the damaged segment; checks what survived and that the log goes on after it. */
async function checkRecovery(
  t: TestContext,
  damaged: Buffer,
  lastSeq: number,
  cleanEnd: number,
): Promise<void> {
  const dir = await makeTempDir(t);
  await mkdir(dir, { mode: 0o700 });
  await writeFile(join(dir, SEGMENT), damaged, { mode: 0o600 });
  let log = await openTestLog(dir);
  assert.equal(log.lastSeq(STREAM), lastSeq);
  assert.equal(log.stats().truncatedBytesAtOpen, damaged.byteLength - cleanEnd);
  assert.equal((await stat(join(dir, SEGMENT))).size, cleanEnd, 'the torn tail is cut off');
  assert.deepEqual(await log.append(STREAM, [recordFor(STREAM, lastSeq + 1)]), {
    firstSeq: lastSeq + 1,
    lastSeq: lastSeq + 1,
  });
  await log.close();
  log = await openTestLog(dir);
  const records = await readAll(log, STREAM);
  assert.deepEqual(
    records.map((record) => record.seq),
    Array.from({ length: lastSeq + 1 }, (_, index) => index + 1),
  );
  for (const record of records) assert.deepEqual(record.bytes, recordFor(STREAM, record.seq));
  await log.close();
}

function damage(segment: Buffer, change: (copy: Buffer) => Buffer): Buffer {
  return change(Buffer.from(segment));
}

describe('stream log - torn tail', () => {
  it('a segment cut at any offset keeps every whole frame and truncates the rest', async (t) => {
    const { segment, boundaries } = await writeReference(t);
    for (let cut = SEGMENT_HEADER_BYTES; cut < segment.byteLength; cut++) {
      const kept = boundaries.filter((boundary) => boundary.end <= cut).at(-1)!;
      await checkRecovery(t, segment.subarray(0, cut), kept.lastSeq, kept.end);
    }
  });

  const lastFrameStart = (boundaries: Written['boundaries']): number => boundaries.at(-2)!.end;
  const CASES: readonly {
    readonly name: string;
    readonly change: (segment: Buffer, lastFrame: number) => Buffer;
    readonly keepsLastFrame: boolean;
  }[] = [
    {
      name: 'random bytes after the last frame',
      change: (s) => Buffer.concat([s, randomBytes(100)]),
      keepsLastFrame: true,
    },
    {
      name: 'zeros after the last frame (the size grew before the data landed)',
      change: (s) => Buffer.concat([s, Buffer.alloc(4096)]),
      keepsLastFrame: true,
    },
    {
      name: 'a frame header whose body never came',
      change: (s, last) => Buffer.concat([s, s.subarray(last, last + FRAME_HEADER_BYTES)]),
      keepsLastFrame: true,
    },
    {
      name: "a flipped bit in the last frame's record",
      change: (s) => {
        s[s.byteLength - 1]! ^= 0x01;
        return s;
      },
      keepsLastFrame: false,
    },
    {
      name: "a flipped bit in the last frame's CRC",
      change: (s, last) => {
        s[last]! ^= 0x80;
        return s;
      },
      keepsLastFrame: false,
    },
    {
      name: 'a last frame claiming a 4 GiB body',
      change: (s, last) => {
        s.writeUInt32LE(0xffffffff, last + 4);
        return s;
      },
      keepsLastFrame: false,
    },
    {
      name: 'a last frame whose sequence number was overwritten',
      change: (s, last) => {
        s.writeUInt32LE(1, last + 13);
        return s;
      },
      keepsLastFrame: false,
    },
  ];
  for (const { name, change, keepsLastFrame } of CASES) {
    it(`recovers from ${name}`, async (t) => {
      const { segment, boundaries } = await writeReference(t);
      const last = lastFrameStart(boundaries);
      const kept = keepsLastFrame ? boundaries.at(-1)! : boundaries.at(-2)!;
      await checkRecovery(
        t,
        damage(segment, (copy) => change(copy, last)),
        kept.lastSeq,
        kept.end,
      );
    });
  }
});

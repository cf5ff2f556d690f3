import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { LOG_ERROR_CODES } from '../../../../agents/ot/log/log-errors.ts';
import { makeTempDir, openTestLog, recordsFor, rejectionCode } from './log-fixture.ts';

const STREAM = 'press-7/damaged';

/** A log of several sealed 4 KiB segments; returns its directory. */
async function sealedLog(t: TestContext): Promise<string> {
  const dir = await makeTempDir(t);
  const log = await openTestLog(dir);
  for (let seq = 1; seq <= 600; seq += 20) await log.append(STREAM, recordsFor(STREAM, seq, 20));
  assert.ok(log.stats().segmentsSealed >= 3);
  await log.close();
  return dir;
}

async function flipByte(path: string, offset: number): Promise<void> {
  const bytes = await readFile(path);
  bytes[offset]! ^= 0x10;
  await writeFile(path, bytes);
}

describe('stream log - damage beyond a torn tail is refused, never repaired by guessing', () => {
  it('a sealed segment damaged inside, its index lost, stops the open', async (t) => {
    const dir = await sealedLog(t);
    await flipByte(join(dir, '0000000001.seg'), 2000);
    await rm(join(dir, '0000000001.idx'));
    assert.equal(await rejectionCode(openTestLog(dir)), LOG_ERROR_CODES.corrupt);
  });

  it('a sealed segment damaged inside fails the read that needs it, and only that one', async (t) => {
    const dir = await sealedLog(t);
    await flipByte(join(dir, '0000000001.seg'), 2000);
    const log = await openTestLog(dir);
    assert.equal(await rejectionCode(log.read(STREAM, 1, 1000)), LOG_ERROR_CODES.corrupt);
    const later = await log.read(STREAM, 500, 10);
    assert.equal(later.records[0]?.seq, 500);
    await log.close();
  });

  it('a damaged segment header stops the open', async (t) => {
    const dir = await sealedLog(t);
    await flipByte(join(dir, '0000000002.seg'), 9);
    await rm(join(dir, '0000000002.idx'));
    assert.equal(await rejectionCode(openTestLog(dir)), LOG_ERROR_CODES.corrupt);
  });

  it('a damaged checkpoint stops the open', async (t) => {
    const dir = await makeTempDir(t);
    const log = await openTestLog(dir, { maxBytes: 16 * 1024 });
    for (let seq = 1; seq <= 2000; seq += 20) await log.append(STREAM, recordsFor(STREAM, seq, 20));
    await log.close();
    await writeFile(
      join(dir, 'streams.checkpoint'),
      '{"format":"dmz-stream-log-checkpoint/1","streams":[[1,',
    );
    assert.equal(await rejectionCode(openTestLog(dir, { maxBytes: 16 * 1024 })), LOG_ERROR_CODES.corrupt);
  });
});

import assert from 'node:assert/strict';
import { readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { makeTempDir, openTestLog, readAll, recordsFor } from './log-fixture.ts';

const STREAM = 'press-7/reopen';

describe('stream log - reopen', () => {
  it('reads only the active segment at open; sealed ones are known from their index', async (t) => {
    const dir = await makeTempDir(t);
    let log = await openTestLog(dir, { segmentBytes: 64 * 1024, maxBytes: 64 * 1024 * 1024 });
    for (let seq = 1; seq <= 20_000; seq += 100) await log.append(STREAM, recordsFor(STREAM, seq, 100));
    await log.close();
    const segments = (await readdir(dir)).filter((name) => name.endsWith('.seg')).sort();
    assert.ok(segments.length > 5, `${segments.length} segments`);
    const active = (await stat(join(dir, segments.at(-1)!))).size;
    log = await openTestLog(dir, { segmentBytes: 64 * 1024, maxBytes: 64 * 1024 * 1024 });
    assert.equal(log.stats().scannedBytesAtOpen, active);
    assert.equal(log.lastSeq(STREAM), 20_000);
    assert.equal((await readAll(log, STREAM, 1, 1000)).length, 20_000);
    await log.close();
  });

  it('a lost index is rebuilt from its segment', async (t) => {
    const dir = await makeTempDir(t);
    let log = await openTestLog(dir);
    for (let seq = 1; seq <= 600; seq += 20) await log.append(STREAM, recordsFor(STREAM, seq, 20));
    await log.close();
    await rm(join(dir, '0000000002.idx'));
    log = await openTestLog(dir);
    assert.ok(log.stats().scannedBytesAtOpen >= (await stat(join(dir, '0000000002.seg'))).size);
    assert.equal((await readAll(log, STREAM)).length, 600);
    await log.close();
    assert.ok((await readdir(dir)).includes('0000000002.idx'));
  });

  it('leftovers of a crash between steps are cleaned up: a temp file, an index without its segment', async (t) => {
    const dir = await makeTempDir(t);
    let log = await openTestLog(dir);
    await log.append(STREAM, recordsFor(STREAM, 1, 5));
    await log.close();
    await writeFile(join(dir, '0000000002.seg.tmp'), 'half a header', { mode: 0o600 });
    await writeFile(join(dir, '0000000000.idx'), 'an index whose segment retention deleted', { mode: 0o600 });
    log = await openTestLog(dir);
    assert.equal(log.lastSeq(STREAM), 5);
    await log.close();
    // Segment 1 sealed by the second open (each epoch writes segments of its own), its index with it.
    assert.deepEqual((await readdir(dir)).sort(), ['0000000001.idx', '0000000001.seg', 'log.epochs']);
  });
});

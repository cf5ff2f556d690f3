/**
 * The one crash-safe write (relay/protocol/durable-files.ts) that the CA state, the credentials
 * and the stream log share: private from the first byte whatever the umask, old or new and never
 * half, nothing left aside, and a file meant to be new never overwrites one.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { replaceFileDurably, writeNewFileFlushed } from '../../../relay/protocol/durable-files.ts';

describe('durable files', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dmz-durable-files-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('durable files - a replacement is 0600 under any umask, whole, with nothing left aside', async (t) => {
    const umask = process.umask(0);
    t.after(() => process.umask(umask));
    const path = join(dir, 'crl.pem');
    await replaceFileDurably(path, 'first\n');
    await replaceFileDurably(path, new TextEncoder().encode('second\n'));
    assert.equal(await readFile(path, 'utf8'), 'second\n');
    if (process.platform !== 'win32') assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(dir), ['crl.pem']);
  });

  it('durable files - replacements of one file at once in one process each land whole, in call order', async () => {
    // The relay's upkeep and a revocation in the same process once raced for the one aside path:
    // one removed the other's half-written file, and a replacement failed with EEXIST.
    const path = join(dir, 'raced.pem');
    const versions = Array.from({ length: 8 }, (_, index) => `${String(index)}\n`.repeat(50_000));
    const outcomes = await Promise.allSettled(versions.map((text) => replaceFileDurably(path, text)));
    assert.deepEqual(
      outcomes.map((outcome) => outcome.status),
      versions.map(() => 'fulfilled'),
    );
    assert.equal(await readFile(path, 'utf8'), versions.at(-1));
    assert.deepEqual(
      (await readdir(dir)).filter((name) => name.startsWith('raced.pem')),
      ['raced.pem'],
    );
  });

  it('durable files - a new file is refused where one exists, which is left as it was', async () => {
    const path = join(dir, 'ca-key.pem');
    await writeNewFileFlushed(path, 'the key\n');
    await assert.rejects(writeNewFileFlushed(path, 'another key\n'), { code: 'EEXIST' });
    assert.equal(await readFile(path, 'utf8'), 'the key\n');
  });
});

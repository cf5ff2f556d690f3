import assert from 'node:assert/strict';
import { appendFile, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { NONCE_FILE, NONCE_MARGIN_MS, NonceRecord } from '../../../../agents/ot/writes/nonce-record.ts';

const NOW = Date.parse('2026-12-01T12:00:00Z');
const FULL_CHILD = fileURLToPath(new URL('./nonce-full-child.ts', import.meta.url));

describe('nonce record', () => {
  let dir: string;
  let clock = NOW;
  const now = () => clock;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dmz-nonces-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const codeOf = (promise: Promise<void>) =>
    promise.then(
      () => 'claimed',
      (error: unknown) => (error as { code?: string }).code,
    );

  it('claims a nonce once, also when two copies arrive together', async () => {
    const record = await NonceRecord.open(dir, now);
    const outcomes = await Promise.all([
      codeOf(record.claim('n-twin-0000000001', NOW + 5000)),
      codeOf(record.claim('n-twin-0000000001', NOW + 5000)),
    ]);
    assert.deepEqual(outcomes.sort(), ['AGENT_ERR_WRITE_REPLAYED', 'claimed']);
    await record.close();
  });

  it('keeps its nonces across a restart, 0600, ignoring a torn last line', async () => {
    const first = await NonceRecord.open(dir, now);
    await first.claim('n-restart-000000001', NOW + 5000);
    await first.close();
    // A crash in the middle of the next append: that nonce's sync never finished.
    await appendFile(join(dir, NONCE_FILE), '{"nonce":"n-torn-00000000');
    const second = await NonceRecord.open(dir, now);
    assert.equal(await codeOf(second.claim('n-restart-000000001', NOW + 5000)), 'AGENT_ERR_WRITE_REPLAYED');
    assert.equal(await codeOf(second.claim('n-torn-000000000001', NOW + 5000)), 'claimed');
    assert.equal((await stat(join(dir, NONCE_FILE))).mode & 0o777, 0o600);
    await second.close();
  });

  it('forgets nonces once their deadline is the margin past, and not before', async () => {
    const record = await NonceRecord.open(dir, now);
    await record.claim('n-old-0000000000001', NOW + 1000);
    await record.close();
    clock = NOW + 1000 + NONCE_MARGIN_MS - 1;
    const still = await NonceRecord.open(dir, now);
    assert.equal(await codeOf(still.claim('n-old-0000000000001', NOW + 1000)), 'AGENT_ERR_WRITE_REPLAYED');
    await still.close();
    clock = NOW + 1000 + NONCE_MARGIN_MS + 1;
    const later = await NonceRecord.open(dir, now);
    await later.close();
    assert.doesNotMatch(await readFile(join(dir, NONCE_FILE), 'utf8'), /n-old-/);
  });

  it('takes no forgotten command again when the clock steps back past the margin, across restarts', async () => {
    clock = NOW;
    const record = await NonceRecord.open(dir, now);
    await record.claim('n-stepped-00000001', NOW + 30_000);
    await record.close();
    // Restarted long after: the nonce is forgotten.
    clock = NOW + 30_000 + NONCE_MARGIN_MS + 60_000;
    await (await NonceRecord.open(dir, now)).close();
    // Then the clock steps back (an NTP step, a DMZ NTP server lying): the deadline lies ahead again.
    clock = NOW;
    const stepped = await NonceRecord.open(dir, now);
    assert.equal(await codeOf(stepped.claim('n-stepped-00000001', NOW + 30_000)), 'AGENT_ERR_WRITE_EXPIRED');
    assert.equal(await codeOf(stepped.claim('n-stepped-00000002', NOW + 30_000)), 'AGENT_ERR_WRITE_EXPIRED');
    // A deadline past every forgotten one is taken: the floor refuses only what may be a replay.
    assert.equal(await codeOf(stepped.claim('n-stepped-00000003', NOW + 30_001)), 'claimed');
    await stepped.close();
  });

  it('executes nothing whose nonce the disk took only part of, and keeps every nonce it said it took', async () => {
    const full = await mkdtemp(join(tmpdir(), 'dmz-nonces-full-'));
    try {
      // A 1 KiB file size limit: about the 18th line is cut short (a short write, then EFBIG),
      // as a disk that fills up takes part of a write and says so only in the byte count.
      const { stdout } = await promisify(execFile)(
        'bash',
        ['-c', 'ulimit -f 1 && exec "$0" --import tsx "$1" "$2" 40', process.execPath, FULL_CHILD, full],
        { timeout: 60_000 },
      );
      const outcomes = stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { nonce: string; outcome: string });
      const taken = outcomes.filter(({ outcome }) => outcome === 'claimed');
      assert.ok(taken.length > 5 && taken.length < 40, `${taken.length} claims before the disk was full`);
      assert.deepEqual(
        new Set(outcomes.filter(({ outcome }) => outcome !== 'claimed').map(({ outcome }) => outcome)),
        new Set(['AGENT_ERR_WRITE_STORAGE']),
      );
      // Restarted: every nonce whose command may have run is still known.
      const record = await NonceRecord.open(full);
      for (const { nonce } of taken)
        assert.equal(
          await codeOf(record.claim(nonce, Date.now() + 60_000)),
          'AGENT_ERR_WRITE_REPLAYED',
          nonce,
        );
      await record.close();
    } finally {
      await rm(full, { recursive: true, force: true });
    }
  });
});

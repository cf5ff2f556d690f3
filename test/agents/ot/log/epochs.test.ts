import assert from 'node:assert/strict';
import { cp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { EPOCHS_FILE } from '../../../../agents/ot/log/epochs.ts';
import { makeTempDir, openTestLog, recordsFor, rejectionCode } from './log-fixture.ts';

const TEMP = 'press-7/line1/temp';
const COUNT = 'press-7/line1/count';
const LATE = 'press-7/line1/late';

async function appendRun(log: Awaited<ReturnType<typeof openTestLog>>, stream: string, count: number) {
  const first = log.lastSeq(stream) + 1;
  for (let seq = first; seq < first + count; seq += 10) {
    await log.append(stream, recordsFor(stream, seq, Math.min(10, first + count - seq)));
  }
}

describe('stream log - epochs', () => {
  it('starts a new epoch at every open, kept across restarts, newest first', async (t) => {
    const dir = await makeTempDir(t);
    const seen: string[] = [];
    for (let open = 1; open <= 3; open++) {
      const log = await openTestLog(dir);
      const epochs = log.epochs(8);
      assert.equal(epochs.length, open);
      assert.deepEqual(epochs.slice(1), seen, 'the earlier epochs, newest first');
      assert.match(epochs[0]!, /^[0-9a-f]{16}$/);
      assert.ok(!seen.includes(epochs[0]!), 'a new id');
      seen.unshift(epochs[0]!);
      assert.deepEqual(log.epochs(1), [epochs[0]]);
      await appendRun(log, TEMP, 25);
      await log.close();
    }
  });

  it('writes each epoch to segments of its own: an open seals the segment the last run wrote', async (t) => {
    const dir = await makeTempDir(t);
    let log = await openTestLog(dir, { segmentBytes: 64 * 1024 });
    await appendRun(log, TEMP, 30);
    await log.close();
    log = await openTestLog(dir, { segmentBytes: 64 * 1024 });
    await appendRun(log, TEMP, 30);
    await log.close();
    const files = (await readdir(dir)).sort();
    assert.deepEqual(files, ['0000000001.idx', '0000000001.seg', '0000000002.seg', EPOCHS_FILE]);
    const { epochs } = JSON.parse(await readFile(join(dir, EPOCHS_FILE), 'utf8')) as {
      epochs: [string, number][];
    };
    assert.deepEqual(
      epochs.map(([, first]) => first),
      [1, 2],
    );
  });

  it('agrees with a consumer of its own epochs up to its last records; a cursor naming none is only checked against them', async (t) => {
    const dir = await makeTempDir(t);
    let log = await openTestLog(dir);
    await appendRun(log, TEMP, 100);
    const first = log.epochs(1);
    await log.close();
    log = await openTestLog(dir);
    await appendRun(log, TEMP, 50);
    await appendRun(log, COUNT, 20);
    t.after(() => log.close());
    for (const known of [[], log.epochs(2), first]) {
      const agreement = log.agreement(known);
      // A consumer of the first run holds at most what it wrote: 100, all of it still this log's.
      const temp = known === first ? 100 : 150;
      assert.equal(agreement.limit(TEMP), temp, `${known.length} epochs`);
      assert.equal(agreement.limit(COUNT), known === first ? 0 : 20);
      assert.equal(agreement.limit('press-7/never'), 0);
    }
  });

  it('agrees with nothing a consumer holds once the log is re-created', async (t) => {
    const dir = await makeTempDir(t);
    let log = await openTestLog(dir);
    await appendRun(log, TEMP, 100);
    const before = log.epochs(8);
    await log.close();
    await rm(dir, { recursive: true });
    log = await openTestLog(dir);
    t.after(() => log.close());
    await appendRun(log, TEMP, 300);
    const agreement = log.agreement(before);
    assert.equal(agreement.limit(TEMP), 0);
    assert.match(agreement.reason, /re-created/);
    // The new log agrees with a consumer of its own epoch as usual.
    assert.equal(log.agreement(log.epochs(1)).limit(TEMP), 300);
  });

  it('restored from an older copy, agrees up to where the copy ends, however far the log has grown since', async (t) => {
    const dir = await makeTempDir(t);
    const backup = `${dir}-backup`;
    let log = await openTestLog(dir);
    await appendRun(log, TEMP, 100);
    await appendRun(log, COUNT, 10);
    await log.close();
    await cp(dir, backup, { recursive: true });
    // The run the copy never saw: a consumer read up to 160 of it and learned its epoch.
    log = await openTestLog(dir);
    await appendRun(log, TEMP, 60);
    await appendRun(log, LATE, 5);
    const consumerKnows = log.epochs(8);
    await log.close();

    await rm(dir, { recursive: true });
    await cp(backup, dir, { recursive: true });
    log = await openTestLog(dir);
    t.after(() => log.close());
    // Grown past the consumer's 160 before it comes back: only the epochs can tell.
    await appendRun(log, TEMP, 200);
    assert.equal(log.lastSeq(TEMP), 300);
    const agreement = log.agreement(consumerKnows);
    assert.equal(agreement.limit(TEMP), 100, 'what the copy held');
    assert.equal(agreement.limit(COUNT), 10);
    assert.equal(agreement.limit(LATE), 0, 'a stream the copy never had');
    assert.match(agreement.reason, /restored from an older copy/);
  });

  it('cannot agree past an epoch whose start retention deleted, and numbers segments on after an empty log', async (t) => {
    const dir = await makeTempDir(t);
    let now = 1_000_000;
    const options = { now: () => now, maxAgeMs: 60_000 };
    let log = await openTestLog(dir, options);
    await appendRun(log, TEMP, 50);
    const first = log.epochs(1);
    await log.close();
    log = await openTestLog(dir, options);
    await appendRun(log, TEMP, 50);
    await log.close();
    // Everything ages out while the agent is down.
    now += 10 * 60_000;
    log = await openTestLog(dir, options);
    assert.equal(log.stats().segments, 0);
    await appendRun(log, TEMP, 10);
    t.after(() => log.close());
    const agreement = log.agreement(first);
    assert.equal(agreement.limit(TEMP), 0);
    assert.match(agreement.reason, /no longer holds/);
    // New segments are numbered after every epoch's first: 1 and 2 were given before.
    assert.ok(
      (await readdir(dir)).some((name) => name === '0000000003.seg'),
      (await readdir(dir)).join(' '),
    );
  });

  it('never gives a segment number twice, even after retention deleted every segment of a run', async (t) => {
    const dir = await makeTempDir(t);
    let now = 1_000_000;
    const options = { now: () => now, maxAgeMs: 60_000, segmentBytes: 4096 };
    let log = await openTestLog(dir, options);
    await appendRun(log, TEMP, 2000);
    const given = log.stats().segments;
    assert.ok(given > 3, `${given} segments`);
    now += 10 * 60_000;
    await log.enforceRetention();
    assert.equal(log.stats().segments, 0);
    await log.close();
    log = await openTestLog(dir, options);
    t.after(() => log.close());
    await appendRun(log, TEMP, 10);
    const numbers = (await readdir(dir)).filter((name) => name.endsWith('.seg'));
    assert.deepEqual(numbers, [`${String(given + 1).padStart(10, '0')}.seg`]);
  });

  it('refuses a damaged epochs file with AGENT_ERR_LOG_CORRUPT', async (t) => {
    const dir = await makeTempDir(t);
    const log = await openTestLog(dir);
    await log.close();
    for (const damage of ['not json', '{"format":"dmz-stream-log-epochs/1","epochs":[["xyz",1]]}']) {
      await writeFile(join(dir, EPOCHS_FILE), damage);
      assert.equal(await rejectionCode(openTestLog(dir)), 'AGENT_ERR_LOG_CORRUPT', damage);
    }
  });
});

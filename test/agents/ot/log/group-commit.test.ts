import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_APPEND_BYTES, MAX_COMMIT_BYTES, MAX_RECORD_BYTES } from '../../../../agents/ot/log/limits.ts';
import { makeTempDir, openTestLog, readAll, recordFor, recordsFor } from './log-fixture.ts';

const streamName = (index: number): string => `press-7/temps/t${index}`;

describe('stream log - group commit', () => {
  it('a lone append is committed by itself, at once', async (t) => {
    const log = await openTestLog(await makeTempDir(t));
    await log.append('press-7/alone', [recordFor('press-7/alone', 1)]);
    assert.equal(log.stats().dataSyncs, 1);
    await log.close();
  });

  it('many concurrent appends from many streams share a few fdatasyncs', async (t) => {
    const log = await openTestLog(await makeTempDir(t), { segmentBytes: 256 * 1024 });
    const appends = 500;
    await Promise.all(
      Array.from({ length: appends }, (_, call) => {
        const stream = streamName(call % 100);
        return log.append(stream, recordsFor(stream, Math.floor(call / 100) * 3 + 1, 3));
      }),
    );
    const { dataSyncs } = log.stats();
    assert.ok(dataSyncs <= appends / 50, `${appends} appends took ${dataSyncs} fdatasyncs`);
    for (let index = 0; index < 100; index++) assert.equal(log.lastSeq(streamName(index)), 15);
    await log.close();
  });

  it('appenders that await and append again join the commit behind the one in flight', async (t) => {
    const log = await openTestLog(await makeTempDir(t), { segmentBytes: 256 * 1024 });
    const appenders = 20;
    const rounds = 20;
    await Promise.all(
      Array.from({ length: appenders }, async (_, appender) => {
        const stream = streamName(appender);
        for (let round = 0; round < rounds; round++) await log.append(stream, [recordFor(stream, round + 1)]);
      }),
    );
    const { appends, dataSyncs } = log.stats();
    assert.equal(appends, appenders * rounds);
    assert.ok(dataSyncs <= appends / 5, `${appends} appends took ${dataSyncs} fdatasyncs`);
    for (let appender = 0; appender < appenders; appender++) {
      assert.equal((await readAll(log, streamName(appender))).length, rounds);
    }
    await log.close();
  });

  it('a commit takes at most MAX_COMMIT_BYTES, so a large queue is written in several', async (t) => {
    const log = await openTestLog(await makeTempDir(t), {
      maxBytes: 256 * 1024 * 1024,
      segmentBytes: 32 * 1024 * 1024,
    });
    const perAppend = Math.floor(MAX_APPEND_BYTES / MAX_RECORD_BYTES);
    const record = new Uint8Array(MAX_RECORD_BYTES).fill(7);
    const appends = Math.ceil((2 * MAX_COMMIT_BYTES) / (perAppend * MAX_RECORD_BYTES)) + 1;
    await Promise.all(
      Array.from({ length: appends }, () =>
        log.append(
          'press-7/big',
          Array.from({ length: perAppend }, () => record),
        ),
      ),
    );
    assert.ok(log.stats().dataSyncs >= 3, `${log.stats().dataSyncs} commits for ${appends} appends`);
    assert.equal(log.lastSeq('press-7/big'), appends * perAppend);
    await log.close();
  });
});

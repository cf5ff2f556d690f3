import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { describe, it } from 'node:test';
import {
  MAX_APPEND_BYTES,
  MAX_READ_RECORDS,
  MAX_RECORD_BYTES,
  MAX_RECORDS_PER_APPEND,
} from '../../../../agents/ot/log/limits.ts';
import { LOG_ERROR_CODES } from '../../../../agents/ot/log/log-errors.ts';
import type { StreamLogOptions } from '../../../../agents/ot/log/stream-log.ts';
import { ConfigError } from '../../../../relay/protocol/errors.ts';
import { MAX_TOPIC_BYTES } from '../../../../relay/protocol/limits.ts';
import { makeTempDir, openTestLog, recordFor, rejectionCode } from './log-fixture.ts';

const GOOD = 'press-7/good';
const good = recordFor(GOOD, 1);

const REFUSED_APPENDS: readonly (readonly [string, unknown, unknown, string])[] = [
  [
    'a stream name over the topic limit',
    `press-7/${'x'.repeat(MAX_TOPIC_BYTES)}`,
    [good],
    'RELAY_ERR_INVALID_TOPIC',
  ],
  ['an empty stream name', '', [good], 'RELAY_ERR_INVALID_TOPIC'],
  ['a wildcard in the stream name', 'press-7/+/t1', [good], 'RELAY_ERR_INVALID_TOPIC'],
  ['a stream name with ..', 'press-7/../t1', [good], 'RELAY_ERR_INVALID_TOPIC'],
  ['a stream name that is not a string', 7, [good], 'RELAY_ERR_INVALID_TOPIC'],
  ['no records', GOOD, [], LOG_ERROR_CODES.append],
  ['records that are not an array', GOOD, good, LOG_ERROR_CODES.append],
  ['an empty record', GOOD, [new Uint8Array(0)], LOG_ERROR_CODES.record],
  ['an empty record after a good one', GOOD, [good, new Uint8Array(0)], LOG_ERROR_CODES.record],
  ['a record over MAX_RECORD_BYTES', GOOD, [new Uint8Array(MAX_RECORD_BYTES + 1)], LOG_ERROR_CODES.record],
  ['a record that is a string', GOOD, ['sixty bytes'], LOG_ERROR_CODES.record],
  [
    'more than MAX_RECORDS_PER_APPEND records',
    GOOD,
    Array.from({ length: MAX_RECORDS_PER_APPEND + 1 }, () => good),
    LOG_ERROR_CODES.append,
  ],
  [
    'more than MAX_APPEND_BYTES in one append',
    GOOD,
    Array.from(
      { length: Math.floor(MAX_APPEND_BYTES / MAX_RECORD_BYTES) + 1 },
      () => new Uint8Array(MAX_RECORD_BYTES),
    ),
    LOG_ERROR_CODES.append,
  ],
];

describe('stream log - bad input is refused with a clear error and nothing written', () => {
  it('refuses each bad append, numbering and writing nothing', async (t) => {
    const dir = await makeTempDir(t);
    let log = await openTestLog(dir);
    await log.append('press-7/other', [recordFor('press-7/other', 1)]);
    const before = { bytes: log.bytesOnDisk(), streams: log.streams(), stats: log.stats() };
    for (const [name, stream, records, code] of REFUSED_APPENDS) {
      // The values a caller in plain JavaScript (or a decoded frame) could hand over.
      assert.equal(await rejectionCode(log.append(stream as string, records as Uint8Array[])), code, name);
    }
    assert.equal(log.bytesOnDisk(), before.bytes);
    assert.deepEqual(log.streams(), before.streams);
    assert.deepEqual(log.stats(), before.stats);
    assert.deepEqual(await log.append(GOOD, [good]), { firstSeq: 1, lastSeq: 1 }, 'no number was used up');
    await log.close();
    log = await openTestLog(dir);
    assert.deepEqual(log.streams(), ['press-7/other', GOOD]);
    await log.close();
  });

  it('refuses a read with a bad range', async (t) => {
    const log = await openTestLog(await makeTempDir(t));
    for (const [fromSeq, maxRecords] of [
      [0, 10],
      [-1, 10],
      [1.5, 10],
      [Number.NaN, 10],
      [1, 0],
      [1, MAX_READ_RECORDS + 1],
    ] as const) {
      assert.equal(
        await rejectionCode(log.read(GOOD, fromSeq, maxRecords)),
        LOG_ERROR_CODES.read,
        `${fromSeq}, ${maxRecords}`,
      );
    }
    await log.close();
  });

  it('refuses appends and reads once closed', async (t) => {
    const log = await openTestLog(await makeTempDir(t));
    await log.close();
    assert.equal(await rejectionCode(log.append(GOOD, [good])), LOG_ERROR_CODES.closed);
    assert.equal(await rejectionCode(log.read(GOOD, 1, 1)), LOG_ERROR_CODES.closed);
  });

  type Options = Partial<Record<keyof StreamLogOptions | 'retention', unknown>>;
  const BAD_OPTIONS: readonly (readonly [string, Options, readonly string[]])[] = [
    ['an unknown option', { retention: '7d' }, ['/retention']],
    // Every problem is listed: the 4 KiB segment is now over a quarter of the budget, too.
    ['a budget below four of the smallest segments', { maxBytes: 1000 }, ['/maxBytes', '/segmentBytes']],
    [
      'a segment over a quarter of the budget',
      { maxBytes: 64 * 1024, segmentBytes: 32 * 1024 },
      ['/segmentBytes'],
    ],
    ['a zero age', { maxAgeMs: 0 }, ['/maxAgeMs']],
    ['a commit delay over MAX_COMMIT_DELAY_MS', { commitDelayMs: 1000 }, ['/commitDelayMs']],
    ['a clock that is not a function', { now: 5 }, ['/now']],
  ];
  for (const [name, options, paths] of BAD_OPTIONS) {
    it(`refuses ${name}, naming the keys`, async (t) => {
      const dir = await makeTempDir(t);
      await assert.rejects(openTestLog(dir, options as Partial<StreamLogOptions>), (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.deepEqual(
          error.issues.map((issue) => issue.path),
          paths,
        );
        return true;
      });
      await assert.rejects(readdir(dir), { code: 'ENOENT' }, 'the directory was not even created');
    });
  }
});

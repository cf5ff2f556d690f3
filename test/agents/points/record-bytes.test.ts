import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { RecordReader, RecordWriter } from '../../../agents/points/record-bytes.ts';
import { DmzError } from '../../../relay/protocol/errors.ts';

/** The caller's error: every refusal of the reader must come out as this one. */
const invalid = (detail: string, cause?: unknown) =>
  new DmzError('AGENT_ERR_STREAM_RECORD', `test record is invalid: ${detail}`, { cause });

const reader = (...bytes: number[]) => new RecordReader(Uint8Array.from(bytes), invalid);

/** The detail a read is refused with, 'none' if it is not, or the name of any other exception. */
function refusalOf(run: () => unknown): string {
  try {
    run();
    return 'none';
  } catch (error) {
    if (!(error instanceof DmzError) || error.code !== 'AGENT_ERR_STREAM_RECORD') return String(error);
    return error.message.replace('test record is invalid: ', '');
  }
}

describe('agents/points record bytes', () => {
  it('reads back what the writer wrote, past the first 64 bytes of its buffer', () => {
    const writer = new RecordWriter();
    const long = new Uint8Array(300).map((_, index) => index % 251);
    writer.byte(0xab);
    writer.varint(0);
    writer.varint(127);
    writer.varint(128);
    writer.varint(Number.MAX_SAFE_INTEGER);
    writer.float64(-21.5);
    writer.bytes(new TextEncoder().encode('Grüße'));
    writer.raw(Uint8Array.of(1, 2, 3));
    writer.bytes(long);
    const bytes = writer.finish();

    const read = new RecordReader(bytes, invalid);
    assert.equal(read.byte(), 0xab);
    assert.equal(read.varint(), 0);
    assert.equal(read.varint(), 127);
    assert.equal(read.varint(), 128);
    assert.equal(read.varint(), Number.MAX_SAFE_INTEGER);
    assert.equal(read.float64(), -21.5);
    assert.equal(read.text(16), 'Grüße');
    assert.deepEqual([...read.raw(3)], [1, 2, 3]);
    assert.equal(read.varint(), 300);
    assert.deepEqual(read.raw(300), long);
    assert.ok(read.atEnd());
    assert.doesNotThrow(() => read.end());
  });

  it('writes varints as unsigned LEB128, beyond 32 bits', () => {
    const bytesOf = (value: number) => {
      const writer = new RecordWriter();
      writer.varint(value);
      return [...writer.finish()];
    };
    assert.deepEqual(bytesOf(300), [0xac, 0x02]);
    assert.deepEqual(bytesOf(2 ** 35), [0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
    assert.equal(bytesOf(Number.MAX_SAFE_INTEGER).length, 8);
  });

  it('round-trips any safe whole number as a varint', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (value) => {
        const writer = new RecordWriter();
        writer.varint(value);
        const read = new RecordReader(writer.finish(), invalid);
        assert.equal(read.varint(), value);
        assert.ok(read.atEnd());
      }),
      { numRuns: 1_000, seed: 6 },
    );
  });

  const ff = (count: number) => Array.from({ length: count }, () => 0xff);
  const REFUSED: [string, () => unknown, RegExp][] = [
    ['a byte past the end', () => reader().byte(), /cut short/],
    ['a varint cut short', () => reader(0x80).varint(), /cut short/],
    ['a varint of nine bytes', () => reader(...ff(8), 0x01).varint(), /varint too long/],
    // 2^53 exactly: 7 continuation bytes of 0x80, then 0x10 (bit 49 of the eighth group).
    ['a varint of 2^53', () => reader(...Array.from({ length: 7 }, () => 0x80), 0x10).varint(), /too large/],
    ['a varint of 56 bits', () => reader(...ff(7), 0x7f).varint(), /too large/],
    ['a float cut short', () => reader(0x40, 0x35, 0, 0).float64(), /cut short/],
    ['a NaN float', () => reader(0x7f, 0xf8, 0, 0, 0, 0, 0, 0).float64(), /finite/],
    ['an infinite float', () => reader(0x7f, 0xf0, 0, 0, 0, 0, 0, 0).float64(), /finite/],
    ['text longer than its bound', () => reader(5, 0x61, 0x62, 0x63, 0x64, 0x65).text(4), /longer than 4/],
    ['text running past the end', () => reader(3, 0x61).text(16), /cut short/],
    ['text that is not UTF-8', () => reader(2, 0xc3, 0x28).text(16), /not UTF-8/],
    ['text with an encoded surrogate', () => reader(3, 0xed, 0xa0, 0x80).text(16), /not UTF-8/],
    ['raw bytes past the end', () => reader(1, 2).raw(3), /cut short/],
    [
      'bytes after the end',
      () => {
        const read = reader(1, 2);
        read.byte();
        read.end();
      },
      /bytes after the end/,
    ],
  ];
  for (const [name, run, detail] of REFUSED) {
    it(`refuses ${name} with the caller's error`, () => {
      assert.match(refusalOf(run), detail);
    });
  }

  it('keeps the decoder error as the cause of a text refusal', () => {
    try {
      reader(1, 0xff).text(4);
      assert.fail('accepted');
    } catch (error) {
      assert.ok(error instanceof DmzError);
      assert.ok(error.cause instanceof TypeError);
    }
  });
});

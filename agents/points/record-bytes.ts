/**
 * The bytes of one record (a point, or a stream record such as a gap): a growing writer and a
 * bounds-checked reader of the few primitives records are made of. Every read that would run past
 * the record, or decode to something no writer makes, throws the caller's error.
 */
import type { DmzError } from '../../relay/protocol/errors.ts';

const FLOAT64_BYTES = 8;
/** 8 varint bytes hold 56 bits: more than any timestamp, sequence or integer written here. */
const MAX_VARINT_BYTES = 8;
const textDecoder = new TextDecoder('utf-8', { fatal: true });
/**
 * Floats go through this scratch, not through a DataView of each record's own array: a record's
 * array is small enough for V8 to keep on its heap, and `.buffer` of such an array (what a
 * DataView needs) moves it off the heap, an allocation per point on the hot path (the agent
 * runtime benchmark measured it as 5-8% of both agents' CPU, and more in garbage collection).
 */
const FLOAT64_SCRATCH = new DataView(new ArrayBuffer(FLOAT64_BYTES));
const FLOAT64_SCRATCH_BYTES = new Uint8Array(FLOAT64_SCRATCH.buffer);

export class RecordWriter {
  #buffer = new Uint8Array(64);
  #length = 0;

  byte(value: number): void {
    this.#reserve(1);
    this.#buffer[this.#length++] = value;
  }

  /** Unsigned LEB128; arithmetic rather than bit operations, which stop at 32 bits. */
  varint(value: number): void {
    let rest = value;
    while (rest >= 0x80) {
      this.byte((rest % 0x80) | 0x80);
      rest = Math.floor(rest / 0x80);
    }
    this.byte(rest);
  }

  float64(value: number): void {
    this.#reserve(FLOAT64_BYTES);
    FLOAT64_SCRATCH.setFloat64(0, value);
    for (let index = 0; index < FLOAT64_BYTES; index++) {
      this.#buffer[this.#length++] = FLOAT64_SCRATCH_BYTES[index] as number;
    }
  }

  /** A length, then the bytes. */
  bytes(bytes: Uint8Array): void {
    this.varint(bytes.byteLength);
    this.#reserve(bytes.byteLength);
    this.#buffer.set(bytes, this.#length);
    this.#length += bytes.byteLength;
  }

  /** Bytes as they are, without a length (fixed-size fields). */
  raw(bytes: Uint8Array): void {
    this.#reserve(bytes.byteLength);
    this.#buffer.set(bytes, this.#length);
    this.#length += bytes.byteLength;
  }

  finish(): Uint8Array {
    return this.#buffer.slice(0, this.#length);
  }

  #reserve(bytes: number): void {
    if (this.#length + bytes <= this.#buffer.byteLength) return;
    const grown = new Uint8Array(Math.max(this.#buffer.byteLength * 2, this.#length + bytes));
    grown.set(this.#buffer.subarray(0, this.#length));
    this.#buffer = grown;
  }
}

export type RecordError = (detail: string, cause?: unknown) => DmzError;

export class RecordReader {
  readonly #bytes: Uint8Array;
  readonly #invalid: RecordError;
  #offset = 0;

  constructor(bytes: Uint8Array, invalid: RecordError) {
    this.#bytes = bytes;
    this.#invalid = invalid;
  }

  byte(): number {
    const value = this.#bytes[this.#offset];
    if (value === undefined) throw this.#invalid('record cut short');
    this.#offset++;
    return value;
  }

  varint(): number {
    let value = 0;
    let scale = 1;
    for (let read = 0; read < MAX_VARINT_BYTES; read++) {
      const byte = this.byte();
      value += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) {
        // Above 2^53 a double rounds: no writer makes such a number, and it would not be the one sent.
        if (value > Number.MAX_SAFE_INTEGER) throw this.#invalid('varint too large');
        return value;
      }
      scale *= 0x80;
    }
    throw this.#invalid('varint too long');
  }

  float64(): number {
    if (this.#offset + FLOAT64_BYTES > this.#bytes.byteLength) throw this.#invalid('record cut short');
    for (let index = 0; index < FLOAT64_BYTES; index++) {
      FLOAT64_SCRATCH_BYTES[index] = this.#bytes[this.#offset++] as number;
    }
    const value = FLOAT64_SCRATCH.getFloat64(0);
    if (!Number.isFinite(value)) throw this.#invalid('a number value must be finite');
    return value;
  }

  text(maxBytes: number): string {
    const length = this.varint();
    if (length > maxBytes) throw this.#invalid(`text longer than ${maxBytes} bytes`);
    if (this.#offset + length > this.#bytes.byteLength) throw this.#invalid('record cut short');
    const slice = this.#bytes.subarray(this.#offset, this.#offset + length);
    this.#offset += length;
    try {
      return textDecoder.decode(slice);
    } catch (cause) {
      throw this.#invalid('text is not UTF-8', cause);
    }
  }

  /** The next `length` bytes, as a view. */
  raw(length: number): Uint8Array {
    if (this.#offset + length > this.#bytes.byteLength) throw this.#invalid('record cut short');
    const slice = this.#bytes.subarray(this.#offset, this.#offset + length);
    this.#offset += length;
    return slice;
  }

  atEnd(): boolean {
    return this.#offset === this.#bytes.byteLength;
  }

  end(): void {
    if (this.#offset !== this.#bytes.byteLength) throw this.#invalid('bytes after the end of the record');
  }
}

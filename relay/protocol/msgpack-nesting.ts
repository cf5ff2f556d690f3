/**
 * A structural pre-scan of a MessagePack body, before the decoder builds anything: it walks the
 * headers only (skipping string, binary and extension payloads by their length), allocates
 * nothing, and refuses nesting deeper than a frame can have. Without it, a 1 MiB frame of nested
 * one-element arrays makes the decoder build a million arrays (hundreds of milliseconds, ~150 MB).
 * Format: https://github.com/msgpack/msgpack/blob/master/spec.md
 */
import { DmzError } from './errors.ts';

/** Bytes after the type byte, for the fixed-size types, by type byte. */
const FIXED_SIZES: Readonly<Record<number, number>> = {
  0xc0: 0,
  0xc2: 0,
  0xc3: 0, // nil, false, true
  0xca: 4,
  0xcb: 8, // float32, float64
  0xcc: 1,
  0xcd: 2,
  0xce: 4,
  0xcf: 8, // uint8..64
  0xd0: 1,
  0xd1: 2,
  0xd2: 4,
  0xd3: 8, // int8..64
  0xd4: 2,
  0xd5: 3,
  0xd6: 5,
  0xd7: 9,
  0xd8: 17, // fixext 1..16 (type byte + data)
};

export function checkNesting(bytes: Uint8Array, maxDepth: number): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // Items still to read in each open container, outermost first; its length is the depth.
  const open: number[] = [];
  let readTopLevel = false;
  let position = 0;
  const fail = (why: string): never => {
    throw new DmzError('RELAY_ERR_MALFORMED_FRAME', `frame body ${why}`);
  };
  const need = (count: number): void => {
    if (position + count > bytes.byteLength) fail('is truncated');
  };
  const length = (size: 1 | 2 | 4): number => {
    need(size);
    const value =
      size === 1 ? view.getUint8(position) : size === 2 ? view.getUint16(position) : view.getUint32(position);
    position += size;
    return value;
  };
  // `position += length(n)` would read `position` before length() advances it: keep them apart.
  const skipPayload = (lengthSize: 1 | 2 | 4, extra = 0): void => {
    const payload = length(lengthSize);
    position += payload + extra;
  };
  const enter = (items: number): void => {
    if (open.length + 1 > maxDepth) fail(`nests deeper than ${maxDepth} levels`);
    // Every item takes at least a byte: a count beyond what is left is a lie, refused before use.
    if (items > bytes.byteLength - position) fail('declares more items than it holds');
    open.push(items);
  };
  for (;;) {
    // A container is closed only once its last item has been read, never before.
    while (open.length > 0 && open[open.length - 1] === 0) open.pop();
    if (open.length > 0) open[open.length - 1] = (open[open.length - 1] ?? 0) - 1;
    else if (readTopLevel) return;
    else readTopLevel = true;
    need(1);
    const type = view.getUint8(position++);
    if (type <= 0x7f || type >= 0xe0) continue; // positive and negative fixint
    if (type <= 0x8f)
      enter((type & 0x0f) * 2); // fixmap: keys and values
    else if (type <= 0x9f)
      enter(type & 0x0f); // fixarray
    else if (type <= 0xbf)
      position += type & 0x1f; // fixstr
    else if (type === 0xc4 || type === 0xd9)
      skipPayload(1); // bin8, str8
    else if (type === 0xc5 || type === 0xda)
      skipPayload(2); // bin16, str16
    else if (type === 0xc6 || type === 0xdb)
      skipPayload(4); // bin32, str32
    else if (type === 0xc7)
      skipPayload(1, 1); // ext8: length, type, data
    else if (type === 0xc8) skipPayload(2, 1);
    else if (type === 0xc9) skipPayload(4, 1);
    else if (type === 0xdc)
      enter(length(2)); // array16
    else if (type === 0xdd)
      enter(length(4)); // array32
    else if (type === 0xde)
      enter(length(2) * 2); // map16
    else if (type === 0xdf)
      enter(length(4) * 2); // map32
    else {
      const size = FIXED_SIZES[type];
      if (size === undefined) fail(`has the invalid type byte 0x${type.toString(16)}`);
      position += size ?? 0;
    }
    if (position > bytes.byteLength) fail('is truncated');
  }
}

import { encode } from '@msgpack/msgpack';

/** A frame built by hand: one kind byte, then whatever MessagePack body the test wants. */
export function rawFrame(kind: number, body: unknown): Uint8Array {
  const encoded = encode(body);
  const bytes = new Uint8Array(encoded.byteLength + 1);
  bytes[0] = kind;
  bytes.set(encoded, 1);
  return bytes;
}

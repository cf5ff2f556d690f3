/**
 * The header of one WebSocket frame, for the two writers that put frames on the TLS socket
 * themselves, beside ws, so a message in pieces (a small head, then bytes shared or received as
 * they are) is never copied into one buffer: the relay's message writer (its frames unmasked, as
 * a server's are) and an agent's tunnel data (masked with the all-zero key, connection.ts).
 */

/** RFC 6455 section 5.2: FIN set, opcode 0x2 (binary). */
const FIN_BINARY = 0x82;
/** The MASK bit of the second byte; a masked frame's header ends with the 4-byte masking key. */
const MASKED = 0x80;
const MASK_KEY_BYTES = 4;
/** Payload lengths up to 125 fit the 7-bit field; up to 65535 take a 16-bit extension (126). */
const MAX_SHORT_LENGTH = 125;
const MAX_MEDIUM_LENGTH = 0xffff;
const MEDIUM_LENGTH_MARK = 126;
const LONG_LENGTH_MARK = 127;

/**
 * The header of one unfragmented binary frame carrying `length` bytes (RFC 6455 section 5.2);
 * `masked`: with the MASK bit and a zero key (section 5.3), under which the payload goes as is.
 */
export function binaryFrameHeader(length: number, masked = false): Buffer {
  const lengthBytes = length <= MAX_SHORT_LENGTH ? 0 : length <= MAX_MEDIUM_LENGTH ? 2 : 8;
  // allocUnsafe takes a slice of Node's pool for a header this small; the key must be zeros.
  const header = Buffer.allocUnsafe(2 + lengthBytes + (masked ? MASK_KEY_BYTES : 0));
  header[0] = FIN_BINARY;
  const mask = masked ? MASKED : 0;
  if (lengthBytes === 0) {
    header[1] = mask | length;
  } else if (lengthBytes === 2) {
    header[1] = mask | MEDIUM_LENGTH_MARK;
    header.writeUInt16BE(length, 2);
  } else {
    header[1] = mask | LONG_LENGTH_MARK;
    // 64-bit length, most significant bit 0; frames are bounded far below 2^53.
    header.writeUIntBE(0, 2, 2);
    header.writeUIntBE(length, 4, 6);
  }
  if (masked) header.fill(0, 2 + lengthBytes);
  return header;
}

/**
 * Tunnel streams, the part both ends and the relay share: how a service is named, and the credit
 * bounds every buffer on the way is sized from. A stream carries one TCP connection inside a
 * session; each direction has its own credit, granted by the receiver (streamOpen's `window`,
 * then streamWindow increments), and a sender never has more bytes in flight than it was granted.
 * The relay checks the same arithmetic, so no end can make it hold more than the credit it saw.
 */

/**
 * A service name is one topic segment without dots (policy grants it as `<ot-agent>/<service>`, a
 * topic filter): `modbus`, `opcua-line-2`. No dot, so `.` and `..` cannot be names.
 */
export const SERVICE_NAME_PATTERN = '^[A-Za-z0-9_-]{1,64}$';
const SERVICE_NAME = new RegExp(SERVICE_NAME_PATTERN);

export function isServiceName(value: string): boolean {
  return SERVICE_NAME.test(value);
}

/**
 * The most credit a receiver may have outstanding on one stream (the window): the most any
 * buffer holds for that stream at the receiver, at the relay, and in flight. 4 MiB carries a
 * gigabit over a 30 ms round trip; a relay with its streams limit of 64 per agent holds at most
 * 256 MiB for a hostile pair that fills every window, far less in practice (see DEFAULT below).
 */
export const MAX_STREAM_WINDOW_BYTES = 4 * 1024 * 1024;

/**
 * The window agents grant unless configured otherwise: throughput per stream is at most window /
 * round trip, so 1 MiB is ~1 GB/s on loopback (~0.3 ms through the relay, measured in
 * bench:tunnel) and ~80 Mbit/s over a 100 ms WAN round trip, for 1 MiB of memory per stream.
 */
export const DEFAULT_STREAM_WINDOW_BYTES = 1024 * 1024;

/**
 * Bytes of one streamData frame at most: Node reads a TCP socket in chunks of up to 64 KiB, so a
 * read is one frame; small enough that streams take turns on the link at a fine grain.
 */
export const MAX_STREAM_CHUNK_BYTES = 64 * 1024;

/** A receiver grants more credit once this share of its window was consumed (HTTP/2's habit). */
export const WINDOW_UPDATE_FRACTION = 0.5;

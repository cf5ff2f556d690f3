/**
 * Tunnel streams, the part both ends and the relay share: how a service is named, and the credit
 * bounds every buffer on the way is sized from. A stream carries one TCP connection inside a
 * session; each direction has its own credit, granted by the receiver (streamOpen's `window`,
 * then streamWindow increments), and a sender never spends more credit than it was granted (a
 * data frame spends its bytes, and at least MIN_STREAM_FRAME_CREDIT).
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
 * 256 MiB of stream bytes for a hostile pair that fills every window (about twice that in memory
 * if they cut it into the smallest frames: MIN_STREAM_FRAME_CREDIT), far less in practice.
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

/**
 * The least credit a data frame costs, whatever it carries. A queued frame costs each hop memory
 * beyond its bytes (measured: ~400-500 bytes per 1-byte frame waiting in the relay's bulk lane,
 * ~280 per queued socket write at an agent), so credit counted in bytes alone would let a sender
 * of 1-byte frames make a hop whose next reader is slow hold ~300 times the window. At 512 a
 * frame's overhead is about its credit, so a window holds at most ~2 windows of memory however it
 * is cut; a Modbus request (12 bytes) still has 2,048 in flight per MiB of window. HTTP/2 knows
 * the attack as "data dribble" (CVE-2019-9511) and "empty frames flood" (CVE-2019-9518).
 */
export const MIN_STREAM_FRAME_CREDIT = 512;

/**
 * The credit a data frame of `bytes` spends, for sender, relay and receiver alike. The end-only
 * frame (no data) costs nothing: it comes once per direction, when the credit may be spent.
 */
export function streamFrameCredit(bytes: number): number {
  return bytes === 0 ? 0 : Math.max(bytes, MIN_STREAM_FRAME_CREDIT);
}

/** A receiver grants more credit once this share of its window was consumed (HTTP/2's habit). */
export const WINDOW_UPDATE_FRACTION = 0.5;

/**
 * Point payloads and the batches every system carries. A point is PAYLOAD_BYTES of printable
 * ASCII, never a newline or a NUL; a batch is agents/points/batch.ts's layout of such points
 * (each after its LEB128 length), so it holds neither either: the same bytes can be a relay
 * publish, an MQTT or NATS payload, and one line for `mosquitto_pub -l`. The index at the front
 * of a point makes it recognisable when it comes back.
 */
import { decodePointBatch, encodePointBatch } from '../../agents/points/batch.ts';
import { PAYLOAD_BYTES } from './settings.ts';

const FILLER = 'abcdefghijklmnopqrstuvwxyz0123456789';
/** A latency stamp: microseconds as fixed-width decimal digits at the front of the first point. */
const STAMP_DIGITS = 16;
const DIGIT_ZERO = 0x30;

export function makePayload(index: number): Buffer {
  const head = `p${index.toString().padStart(10, '0')}|`;
  let text = head;
  while (text.length < PAYLOAD_BYTES) text += FILLER;
  return Buffer.from(text.slice(0, PAYLOAD_BYTES), 'ascii');
}

/** `count` distinct payloads, e.g. one publish frame's batch. */
export function makePayloads(count: number): Buffer[] {
  return Array.from({ length: count }, (_, index) => makePayload(index));
}

/** What one message of a phase is: its batch of points, and where a latency stamp goes in it. */
export interface MessageShape {
  readonly pointsPerMessage: number;
  /** The batch's size: what every system carries as one message's payload. */
  readonly messageBytes: number;
  /** Offset of the first point's payload inside the batch, where stampBatch writes. */
  readonly stampOffset: number;
}

export function makeBatch(pointsPerMessage: number): { batch: Uint8Array; shape: MessageShape } {
  const batch = encodePointBatch(makePayloads(pointsPerMessage));
  const first = decodePointBatch(batch, pointsPerMessage)[0]!;
  return {
    batch,
    shape: { pointsPerMessage, messageBytes: batch.byteLength, stampOffset: first.byteOffset },
  };
}

/** Writes `microseconds` (a non-negative integer) as the stamp of `batch`, in place. */
export function stampBatch(batch: Uint8Array, offset: number, microseconds: number): void {
  let rest = Math.max(0, Math.round(microseconds));
  for (let index = offset + STAMP_DIGITS - 1; index >= offset; index--) {
    batch[index] = DIGIT_ZERO + (rest % 10);
    rest = Math.floor(rest / 10);
  }
}

/** The stamp stampBatch wrote, or NaN where the bytes are not digits. */
export function readStamp(batch: Uint8Array, offset: number): number {
  let value = 0;
  for (let index = offset; index < offset + STAMP_DIGITS; index++) {
    const digit = (batch[index] ?? 0) - DIGIT_ZERO;
    if (digit < 0 || digit > 9) return Number.NaN;
    value = value * 10 + digit;
  }
  return value;
}

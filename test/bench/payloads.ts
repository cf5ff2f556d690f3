/**
 * Point payloads: PAYLOAD_BYTES of printable ASCII, never a newline, so that the same bytes can be
 * one relay point and one line for mosquitto_pub -l / mosquitto_sub. The index at the front makes a
 * latency sample's payload recognisable when it comes back.
 */
import { PAYLOAD_BYTES } from './settings.ts';

const FILLER = 'abcdefghijklmnopqrstuvwxyz0123456789';

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

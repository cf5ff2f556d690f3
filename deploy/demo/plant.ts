/**
 * The demo's plant: a simulated press on the OT side, publishing three tags and accepting a speed
 * setpoint within its range; and a historian on the IT side, printing what arrives and writing a
 * setpoint now and then. Both reach each other only through the relay.
 */
import { DmzError } from '../../relay/protocol/errors.ts';
import type { RelayLink } from '../../agents/link/relay-link.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** The press's writable point: its range is the OT side's own rule, whatever the relay allows. */
const SPEED_RANGE = { min: 0, max: 120 };

/** A simulated press: three readings published periodically, and one writable speed setpoint. */
export class Press {
  speed = 60;
  #timer: NodeJS.Timeout | undefined;

  start(client: RelayLink, name: string, periodMs: number): void {
    let seq = 0;
    this.#timer = setInterval(() => {
      // Once the relay has cut the connection, publish would throw; the press just stops sending.
      if (client.closed) return;
      const t = Date.now() / 1000;
      const readings = {
        temperature: 180 + 5 * Math.sin(t / 3),
        pressure: 42 + 2 * Math.cos(t / 5),
        speed: this.speed + Math.sin(t) * 0.5,
      };
      seq++;
      for (const [tag, value] of Object.entries(readings)) {
        const reading = { value: Number(value.toFixed(2)), ts: Date.now() };
        client.publish(`${name}/${tag}`, seq, [encoder.encode(JSON.stringify(reading))]);
      }
    }, periodMs);
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** The OT side's own check of a write, independent of the relay's policy. */
  answerSetpoint(topic: string, payload: Uint8Array): Uint8Array {
    if (!topic.endsWith('/setpoints/speed'))
      throw new DmzError('RELAY_ERR_FORBIDDEN', 'point is not writable');
    const value = Number(decoder.decode(payload));
    if (!Number.isFinite(value) || value < SPEED_RANGE.min || value > SPEED_RANGE.max) {
      throw new DmzError('RELAY_ERR_FORBIDDEN', `speed must be ${SPEED_RANGE.min}..${SPEED_RANGE.max}`);
    }
    this.speed = value;
    return encoder.encode(`speed set to ${value}`);
  }
}

export interface Reading {
  readonly value: number;
  readonly ts: number;
}

/** A point as the press encodes it, or undefined for anything else (the historian skips it). */
export function decodeReading(point: Uint8Array): Reading | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(point));
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const { value, ts } = parsed as Partial<Record<keyof Reading, unknown>>;
  return typeof value === 'number' && typeof ts === 'number' ? { value, ts } : undefined;
}

/**
 * The benchmark's agents on the relay: one OT publisher and IT subscribers, each subscriber with a
 * session of its own and a counter of what it received. Counters keep numbers, not frames, so
 * memory stays flat however many points go through.
 */
import { RelayLink, type LinkEvents } from '../../agents/link/relay-link.ts';
import type { Role } from '../../relay/protocol/identity.ts';
import type { TestPki } from '../support/test-pki.ts';
import { STARTUP_TIMEOUT_MS } from './settings.ts';

export const PUBLISHER_NAME = 'bench-ot';
export const POINTS_TOPIC = `${PUBLISHER_NAME}/line-1/points`;

/** Counts one subscriber's deliveries, checks their sequence numbers, and wakes a waiter per point. */
export class DeliveryCounter {
  delivered = 0;
  /** Points the relay reported dropping for this subscriber (a slow consumer). */
  dropped = 0;
  /** Deliveries whose seq was not the one after the previous delivery. */
  outOfSequence = 0;
  /** performance.now() of the last delivery. */
  lastDeliveryAt = 0;
  /** Called with each delivery's seq (the latency workload waits on it). */
  onDelivery: ((seq: number) => void) | undefined;
  #nextSeq: number | undefined;

  readonly events: LinkEvents = {
    delivery: (frame) => {
      this.lastDeliveryAt = performance.now();
      if (this.#nextSeq !== undefined && frame.seq !== this.#nextSeq) this.outOfSequence++;
      const points = frame.count;
      this.#nextSeq = frame.seq + points;
      this.delivered += points;
      this.onDelivery?.(frame.seq);
    },
    dropped: (frame) => {
      this.dropped += frame.points;
    },
  };
}

export interface Subscriber {
  readonly client: RelayLink;
  readonly counter: DeliveryCounter;
}

/** What an agent connects with: its certificate and key, and the CA it trusts the relay by. */
export interface AgentTls {
  readonly certPem: string;
  readonly keyPem: string;
  readonly caPem: string;
}

export function connectWithCredentials(
  url: string,
  tls: AgentTls,
  events: LinkEvents = {},
): Promise<RelayLink> {
  return RelayLink.connect(
    { url, ...tls, software: 'dmz-bench', connectTimeoutMs: STARTUP_TIMEOUT_MS },
    events,
  );
}

export function connectAgent(
  url: string,
  pki: TestPki,
  role: Role,
  name: string,
  events?: LinkEvents,
): Promise<RelayLink> {
  return pki
    .issueAgent(role, name)
    .then(({ certPem, keyPem }) =>
      connectWithCredentials(url, { certPem, keyPem, caPem: pki.ca.certPem }, events),
    );
}

/** Connects IT agent `name`, opens a session with the publisher and subscribes to the points topic. */
export async function connectSubscriber(url: string, pki: TestPki, name: string): Promise<Subscriber> {
  const counter = new DeliveryCounter();
  const client = await connectAgent(url, pki, 'it', name, counter.events);
  await subscribeToPoints(client);
  return { client, counter };
}

/** Opens a session with the publisher and subscribes to the points topic; closes `client` on failure. */
export async function subscribeToPoints(client: RelayLink): Promise<void> {
  try {
    const { session } = await client.openSession(PUBLISHER_NAME, `${PUBLISHER_NAME}/#`);
    await client.subscribe(session, POINTS_TOPIC);
  } catch (error) {
    await client.close();
    throw error;
  }
}

/** Publishes on the points topic with one continuous sequence across every phase. */
export class PointPublisher {
  readonly client: RelayLink;
  #seq = 0;

  constructor(client: RelayLink) {
    this.client = client;
  }

  /** Publishes `points` as one frame; returns the frame's seq. */
  publish(points: Uint8Array[]): number {
    const seq = this.#seq;
    this.client.publish(POINTS_TOPIC, seq, points);
    this.#seq += points.length;
    return seq;
  }
}

/**
 * The honest traffic an attack must not disturb: an OT agent publishing one small point every
 * HONEST_PAIR.publishIntervalMs, and an IT agent with a session and a subscription receiving
 * them. The IT side records the gaps between consecutive deliveries inside a window: a relay
 * whose event loop is stalled shows here as a gap far above the publish interval.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { RelayLink } from '../../agents/link/relay-link.ts';
import { HONEST_PAIR } from './attack-settings.ts';
import { makePayload } from './payloads.ts';
import {
  connectWithCredentials,
  DeliveryCounter,
  PointPublisher,
  subscribeToPoints,
  type AgentTls,
} from './relay-agents.ts';
import { summarizeLatency, type LatencyResult } from './stats.ts';

const CLOSE_TIMEOUT_MS = 3_000;
/** A window holds at most this many gaps (a 60 s window at 2 ms): memory stays bounded. */
const MAX_GAPS_PER_WINDOW = 30_000;

export interface GapWindow {
  /** Gaps between consecutive deliveries, ms: p50/p99/max (nearest rank). */
  readonly gaps: LatencyResult;
  readonly delivered: number;
  /** Deliveries out of sequence or reported dropped by the relay: 0 unless points were lost. */
  readonly lost: number;
}

export class HonestPair {
  readonly #publisher: PointPublisher;
  readonly #subscriber: RelayLink;
  readonly #counter: DeliveryCounter;
  readonly #timer: NodeJS.Timeout;
  #gaps: number[] | undefined;
  #lastDeliveryAt = 0;

  private constructor(publisher: PointPublisher, subscriber: RelayLink, counter: DeliveryCounter) {
    this.#publisher = publisher;
    this.#subscriber = subscriber;
    this.#counter = counter;
    const point = [makePayload(0)];
    this.#timer = setInterval(() => {
      if (!publisher.client.closed) publisher.publish(point);
    }, HONEST_PAIR.publishIntervalMs);
    counter.onDelivery = () => {
      const now = performance.now();
      if (this.#gaps !== undefined && this.#gaps.length < MAX_GAPS_PER_WINDOW) {
        this.#gaps.push(now - this.#lastDeliveryAt);
      }
      this.#lastDeliveryAt = now;
    };
  }

  /** Connects both agents (the OT one must be PUBLISHER_NAME), subscribes, and starts publishing. */
  static async start(url: string, publisher: AgentTls, subscriber: AgentTls): Promise<HonestPair> {
    const ot = await connectWithCredentials(url, publisher);
    const counter = new DeliveryCounter();
    let it: RelayLink;
    try {
      it = await connectWithCredentials(url, subscriber, counter.events);
      await subscribeToPoints(it);
    } catch (error) {
      await ot.close();
      throw error;
    }
    const pair = new HonestPair(new PointPublisher(ot), it, counter);
    await delay(HONEST_PAIR.warmUpMs);
    if (counter.delivered === 0) {
      await pair.close();
      throw new Error('the honest pair delivered nothing in its warm-up');
    }
    return pair;
  }

  /** Runs `during` and returns the gaps seen meanwhile, including the one still open at the end. */
  async measure(during: () => Promise<void>): Promise<GapWindow> {
    const gaps: number[] = [];
    const deliveredBefore = this.#counter.delivered;
    const lostBefore = this.#lost();
    this.#gaps = gaps;
    try {
      await during();
    } finally {
      this.#gaps = undefined;
    }
    gaps.push(performance.now() - this.#lastDeliveryAt);
    if (this.#publisher.client.closed || this.#subscriber.closed) {
      throw new Error('the relay closed a connection of the honest pair');
    }
    return {
      gaps: summarizeLatency(gaps),
      delivered: this.#counter.delivered - deliveredBefore,
      lost: this.#lost() - lostBefore,
    };
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#counter.onDelivery = undefined;
    await Promise.race([
      Promise.all([this.#publisher.client.close(), this.#subscriber.close()]),
      delay(CLOSE_TIMEOUT_MS),
    ]);
  }

  #lost(): number {
    return this.#counter.outOfSequence + this.#counter.dropped;
  }
}

/**
 * What a subscriber sees from a JSON bridge. A point is one QoS 1 message on its mapped topic,
 * retained unless configured otherwise:
 *
 *   plant/press-7/line1/temp  {"value":21.5,"quality":"good","timestamp":1764586800000,"seq":12}
 *
 * with `"reason"` after the quality when it is not good; `timestamp` is the source time in
 * milliseconds since the Unix epoch, `seq` the point's sequence number in its stream (the OT
 * topic): it only grows, and a subscriber that sees one it has had already drops it (delivery to
 * the broker is at least once). A gap is a message on the same topic, never retained (the last
 * value stays what it was):
 *
 *   plant/press-7/line1/temp  {"gap":{"from":13,"to":99,"reason":"retention"}}
 *
 * and a reset (the OT agent's log was re-created or restored, and numbers from `from` on name other
 * points now) says to take `seq` from `from` again, although up to `held` was seen:
 *
 *   plant/press-7/line1/temp  {"reset":{"from":1,"held":99,"reason":"log re-created"}}
 *
 * Status: `<status prefix>/<OT agent>` is `online` while a consumer of this bridge has its session
 * with that agent, else `offline`; `<status prefix>/<IT agent>` is the bridge itself, `online`
 * after each connect and `offline` as its will (and at a clean stop). All retained, QoS 1.
 */
import type { Point } from '../../../points/point.ts';
import type { SinkEntry } from '../sink.ts';
import type { BridgeFormat, BridgeMessage, PeerStates } from './bridge-format.ts';
import type { TopicMap } from './topic-map.ts';

export const ONLINE = 'online';
export const OFFLINE = 'offline';

export interface JsonFormatOptions {
  readonly topics: TopicMap;
  readonly retain: boolean;
  readonly statusPrefix: string;
  /** The IT agent's name: the bridge's own status topic. */
  readonly agentName: string;
}

export class JsonFormat implements BridgeFormat {
  readonly #options: JsonFormatOptions;
  /** What each OT agent's status topic says now, as far as this connection has published. */
  readonly #peers = new Map<string, boolean>();
  #lateWills = 0;

  constructor(options: JsonFormatOptions) {
    this.#options = options;
  }

  will(): BridgeMessage {
    return status(this.#bridgeTopic(), false);
  }

  connected(peers: PeerStates): BridgeMessage[] {
    this.#peers.clear();
    return [status(this.#bridgeTopic(), true), ...this.peersChanged(peers)];
  }

  disconnected(): void {
    this.#peers.clear();
  }

  peersChanged(peers: PeerStates): BridgeMessage[] {
    const messages: BridgeMessage[] = [];
    for (const [peer, online] of peers) {
      if (this.#peers.get(peer) === online) continue;
      this.#peers.set(peer, online);
      messages.push(status(`${this.#options.statusPrefix}/${peer}`, online));
    }
    return messages;
  }

  render(entries: readonly SinkEntry[]): BridgeMessage[] {
    const { topics, retain } = this.#options;
    return entries.map((entry) => {
      switch (entry.kind) {
        case 'point':
          return { topic: topics.brokerTopic(entry.point.topic), payload: pointPayload(entry.point), retain };
        case 'gap':
          return notice(topics.brokerTopic(entry.topic), {
            gap: { from: entry.from, to: entry.to, reason: entry.reason },
          });
        case 'reset':
          return notice(topics.brokerTopic(entry.topic), {
            reset: { from: entry.from, held: entry.held, reason: entry.reason },
          });
      }
    });
  }

  /**
   * The bridge's own status, heard back: an `offline` while connected is the will of an earlier
   * connection that the broker published late (it noticed the cut after this connection began,
   * or on this connection's session takeover). Said again, so the retained state is true.
   */
  command(topic: string, payload: Buffer): BridgeMessage[] {
    if (topic !== this.#bridgeTopic() || payload.toString('utf8') !== OFFLINE) return [];
    this.#lateWills++;
    return [status(this.#bridgeTopic(), true)];
  }

  get lateWills(): number {
    return this.#lateWills;
  }

  /** A clean stop: every status offline, the bridge's last (its will is not sent after a DISCONNECT). */
  closing(): BridgeMessage[] {
    const offline = new Map([...this.#peers.keys()].map((peer) => [peer, false]));
    return [...this.peersChanged(offline), status(this.#bridgeTopic(), false)];
  }

  subscriptions(): readonly string[] {
    return [this.#bridgeTopic()];
  }

  #bridgeTopic(): string {
    return `${this.#options.statusPrefix}/${this.#options.agentName}`;
  }
}

/** Gaps and resets are never retained: the topic's last value stays what it was. */
function notice(topic: string, body: object): BridgeMessage {
  return { topic, payload: Buffer.from(JSON.stringify(body)), retain: false };
}

function status(topic: string, online: boolean): BridgeMessage {
  return { topic, payload: Buffer.from(online ? ONLINE : OFFLINE), retain: true };
}

/** The payload JSON.stringify makes of {value, quality, reason?, timestamp, seq}, without the object. */
export function pointPayload(point: Point): Buffer {
  const because = point.reason === undefined ? '' : `,"reason":${JSON.stringify(point.reason)}`;
  return Buffer.from(
    `{"value":${JSON.stringify(point.value)},"quality":"${point.quality}"${because},"timestamp":${point.sourceTime},"seq":${point.seq}}`,
  );
}

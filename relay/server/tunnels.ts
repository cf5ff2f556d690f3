/**
 * Tunnel streams at the relay: an IT agent opens a stream to a named service of its session's OT
 * agent, and the two ends exchange bytes with credit-based flow control (protocol/streams.ts).
 *
 * The relay checks, in this order: the connection is a member of the open session, the stream is
 * known (or, on open, new), policy grants `<ot-agent>/<service>` to the IT identity, the limits per
 * session and per agent hold; then it acts. It never names a host or a port: the OT agent maps
 * the service to its target, and refuses a service it does not have.
 *
 * Credit, per direction: the receiver grants, the sender spends (a frame at least
 * MIN_STREAM_FRAME_CREDIT, so credit bounds frames as well as bytes). The relay keeps the same
 * arithmetic and refuses (error frame, nothing forwarded, nothing changed) data beyond the credit
 * and a grant beyond the window, so what it queues for one stream is never more than one window,
 * whatever either end does. Stream data leaves through the link's bulk lane (message-writer.ts),
 * behind live points and control frames; windows and closes go as control frames, so credit and
 * aborts are never held up by bulk. An OT agent accepts a stream by granting its first credit.
 *
 * A stream ends when both directions have ended (each end's `end` flag: TCP's half-close), when
 * either end aborts it (streamClose, forwarded), or when its session ends (the sessionClose both
 * ends get says it all). Each end is audited once, with the bytes each way and the duration.
 *
 * The design as a whole (issue 9), end to end:
 * - Frames (protocol/frames.ts, 0x70-0x73): streamOpen {session, stream, service, window} from the
 *   IT agent, handed to the OT agent; streamData {data <= 64 KiB, end?}; streamWindow {credit};
 *   streamClose {code}. A refused frame's error names the stream.
 * - Sessions: the IT entrance (agents/tunnels/entrance.ts) holds one session per OT agent, filter
 *   `<ot-agent>/+`, opened when a client comes; a tunnel grant lets it open one. Streams are
 *   numbered by the entrance; the session's lease, end, revocation and policy cover them.
 * - One state machine at both ends (agents/tunnels/tunnel-stream.ts): a TCP socket joined to a
 *   stream, read only within the send credit, written within the receive window, which is granted
 *   again as the socket takes the bytes; half-close both ways; abort = the socket reset.
 * - Bounds, per stream one window (1 MiB by default, protocol/streams.ts) at each of: the IT agent,
 *   the relay's bulk lane, the OT agent; per connection, the stream limits here and, at the agents,
 *   a pause of every socket while the link holds more than 1 MiB (agents/tunnels/stream-mux.ts).
 * - The OT exit (agents/tunnels/exit.ts) owns the services: target, allowlist, streams (and per IT
 *   agent), idle time, connect timeout, bytes per second. A refusal there is a streamClose with its AGENT_ERR_ code,
 *   which the relay audits as tunnel.refused, and the entrance turns into the client's reset.
 * - A lost link ends every stream at that end with no frame (the relay ended the sessions); the
 *   entrances keep listening, reset clients while offline, and open a new session when one comes.
 */
import { streamDataFrame } from '../protocol/codec.ts';
import { DmzError, ERROR_MESSAGES, isErrorCode } from '../protocol/errors.ts';
import type { ToRelayFrameOf } from '../protocol/frames.ts';
import { MAX_STREAM_WINDOW_BYTES, streamFrameCredit } from '../protocol/streams.ts';
import { topicMatches } from '../protocol/topics.ts';
import { quoteField } from '../protocol/wire-text.ts';
import type { AgentConnection } from './agent-connection.ts';
import { AUDIT_EVENT } from './audit.ts';
import type { RelayContext } from './context.ts';
import { findMemberSession } from './session-handlers.ts';
import type { Session } from './sessions.ts';

type TunnelContext = Omit<RelayContext, 'tunnels'>;

class RelayStream {
  readonly session: Session;
  readonly id: number;
  readonly service: string;
  readonly openedAt: number;
  /** The OT agent granted its first credit: the target is connected. */
  accepted = false;
  /** Credit granted by the other end and not spent yet, per sender. */
  itMaySend = 0;
  otMaySend: number;
  bytesToOt = 0;
  bytesToIt = 0;
  itEnded = false;
  otEnded = false;

  constructor(session: Session, id: number, service: string, window: number, openedAt: number) {
    this.session = session;
    this.id = id;
    this.service = service;
    this.otMaySend = window;
    this.openedAt = openedAt;
  }
}

export class Tunnels {
  readonly #ctx: TunnelContext;
  readonly #bySession = new Map<Session, Map<number, RelayStream>>();
  readonly #perAgent = new Map<AgentConnection, number>();
  /** The highest stream number each session opened: below it, an unknown number has ended. */
  readonly #highestOpened = new WeakMap<Session, number>();

  /** `ctx` is the broker's context itself (its policy is replaced on reload), tunnels aside. */
  constructor(ctx: TunnelContext) {
    this.#ctx = ctx;
  }

  /** Streams open at the relay, all sessions together. */
  get size(): number {
    let count = 0;
    for (const streams of this.#bySession.values()) count += streams.size;
    return count;
  }

  open(connection: AgentConnection, frame: ToRelayFrameOf<'streamOpen'>): void {
    const session = findMemberSession(connection, frame.session, true);
    try {
      this.#checkOpen(connection, session, frame);
      session.ot.outbound.forward({
        type: 'streamOpen',
        session: session.id,
        stream: frame.stream,
        service: frame.service,
        window: frame.window,
      });
    } catch (error) {
      this.#ctx.audit.record(AUDIT_EVENT.tunnelRefused, {
        session: session.id,
        stream: frame.stream,
        it: session.it.name,
        ot: session.ot.name,
        service: frame.service,
        reason: error instanceof DmzError ? error.code : 'RELAY_ERR_INTERNAL',
      });
      throw error;
    }
    const stream = new RelayStream(session, frame.stream, frame.service, frame.window, this.#ctx.now());
    let streams = this.#bySession.get(session);
    if (streams === undefined) this.#bySession.set(session, (streams = new Map<number, RelayStream>()));
    streams.set(stream.id, stream);
    this.#highestOpened.set(session, Math.max(stream.id, this.#highestOpened.get(session) ?? 0));
    for (const member of [session.it, session.ot]) this.#count(member, 1);
    this.#ctx.metrics.tunnelStreams.inc();
  }

  #checkOpen(connection: AgentConnection, session: Session, frame: ToRelayFrameOf<'streamOpen'>): void {
    if (connection !== session.it)
      throw new DmzError('RELAY_ERR_FORBIDDEN', 'only the IT side opens streams');
    const { it, ot } = session;
    if (!topicMatches(session.filter, `${ot.name}/${frame.service}`)) {
      throw new DmzError('RELAY_ERR_FORBIDDEN', 'service lies outside the session filter');
    }
    if (!this.#ctx.policy.mayTunnel(it.identity, ot.identity, frame.service)) {
      throw new DmzError(
        'RELAY_ERR_FORBIDDEN',
        `no tunnel grant covers ${quoteField(`${ot.name}/${frame.service}`)}`,
      );
    }
    const streams = this.#bySession.get(session);
    if (streams?.has(frame.stream) === true) throw new DmzError('RELAY_ERR_DUPLICATE_STREAM');
    const { maxStreamsPerSession, maxStreamsPerAgent } = this.#ctx.config.limits;
    if ((streams?.size ?? 0) >= maxStreamsPerSession) {
      throw new DmzError('RELAY_ERR_TOO_MANY', `at most ${maxStreamsPerSession} streams per session`);
    }
    for (const member of [it, ot]) {
      if ((this.#perAgent.get(member) ?? 0) >= maxStreamsPerAgent) {
        throw new DmzError(
          'RELAY_ERR_TOO_MANY',
          `${quoteField(member.name)} has ${maxStreamsPerAgent} streams open, the most per agent`,
        );
      }
    }
  }

  data(connection: AgentConnection, frame: ToRelayFrameOf<'streamData'>): void {
    const stream = this.#find(connection, frame.session, frame.stream);
    const fromIt = connection === stream.session.it;
    if (fromIt ? stream.itEnded : stream.otEnded) {
      throw new DmzError('RELAY_ERR_BAD_STATE', 'stream data after this side ended the stream');
    }
    const bytes = frame.data.byteLength;
    if (bytes === 0 && frame.end !== true) {
      throw new DmzError('RELAY_ERR_INVALID_FRAME', 'stream data frame with no data and no end');
    }
    const credit = fromIt ? stream.itMaySend : stream.otMaySend;
    // At least MIN_STREAM_FRAME_CREDIT a frame: what the bulk lane holds per frame is bounded too.
    const spent = streamFrameCredit(bytes);
    if (spent > credit) {
      throw new DmzError(
        'RELAY_ERR_STREAM_CREDIT',
        `${bytes} bytes of data (${spent} of credit) against ${credit} of credit`,
      );
    }
    if (fromIt) {
      stream.itMaySend -= spent;
      stream.bytesToOt += bytes;
      stream.itEnded = frame.end === true;
      this.#ctx.metrics.tunnelBytes.labels('to_ot').inc(bytes);
    } else {
      stream.otMaySend -= spent;
      stream.bytesToIt += bytes;
      stream.otEnded = frame.end === true;
      this.#ctx.metrics.tunnelBytes.labels('to_it').inc(bytes);
    }
    stream.session.peerOf(connection).link.sendBulk(streamDataFrame(frame));
    if (stream.itEnded && stream.otEnded) this.#finish(stream, 'end');
  }

  window(connection: AgentConnection, frame: ToRelayFrameOf<'streamWindow'>): void {
    const stream = this.#live(connection, frame.session, frame.stream);
    if (stream === undefined) return;
    const fromOt = connection === stream.session.ot;
    const outstanding = fromOt ? stream.itMaySend : stream.otMaySend;
    if (outstanding + frame.credit > MAX_STREAM_WINDOW_BYTES) {
      throw new DmzError(
        'RELAY_ERR_STREAM_CREDIT',
        `credit of ${outstanding + frame.credit} bytes would exceed the window of ${MAX_STREAM_WINDOW_BYTES}`,
      );
    }
    if (fromOt) stream.itMaySend += frame.credit;
    else stream.otMaySend += frame.credit;
    stream.session.peerOf(connection).outbound.sendControl({
      type: 'streamWindow',
      session: frame.session,
      stream: frame.stream,
      credit: frame.credit,
    });
    if (fromOt && !stream.accepted) {
      stream.accepted = true;
      this.#ctx.audit.record(AUDIT_EVENT.tunnelOpened, this.#describe(stream));
    }
  }

  close(connection: AgentConnection, frame: ToRelayFrameOf<'streamClose'>): void {
    const stream = this.#live(connection, frame.session, frame.stream);
    if (stream === undefined) return;
    const message =
      frame.message ?? (isErrorCode(frame.code) ? ERROR_MESSAGES[frame.code] : 'stream closed by the peer');
    stream.session.peerOf(connection).outbound.sendControl({
      type: 'streamClose',
      session: frame.session,
      stream: frame.stream,
      code: frame.code,
      message,
    });
    this.#finish(stream, frame.code);
  }

  /** The session ended (both ends were told): its streams with it. */
  sessionEnded(session: Session, code: string): void {
    const streams = this.#bySession.get(session);
    if (streams === undefined) return;
    for (const stream of [...streams.values()]) this.#finish(stream, code);
  }

  /** After a policy reload: aborts, on both ends, every stream no longer granted. */
  enforcePolicy(): number {
    let closed = 0;
    for (const streams of [...this.#bySession.values()]) {
      for (const stream of [...streams.values()]) {
        const { it, ot } = stream.session;
        if (this.#ctx.policy.mayTunnel(it.identity, ot.identity, stream.service)) continue;
        const code = 'RELAY_ERR_POLICY_CHANGED';
        for (const member of [it, ot]) {
          member.outbound.sendControl({
            type: 'streamClose',
            session: stream.session.id,
            stream: stream.id,
            code,
            message: ERROR_MESSAGES[code],
          });
        }
        this.#finish(stream, code);
        closed++;
      }
    }
    return closed;
  }

  #find(connection: AgentConnection, session: number, id: number): RelayStream {
    const stream = this.#live(connection, session, id);
    if (stream === undefined)
      throw new DmzError('RELAY_ERR_NO_SUCH_STREAM', `no stream ${id} in session ${session}`);
    return stream;
  }

  /**
   * The stream, or undefined for one this session opened and has forgotten. A stream is forgotten
   * once both ends sent their end, while the receiving end may still grant credit for the bytes it
   * is writing out, or reset its socket; RFC 9113 section 5.1 ignores WINDOW_UPDATE and RST_STREAM
   * on a closed stream for the same reason. So grants and closes for it are ignored, not refused:
   * an error would go as a control frame, overtake the end still in the bulk lane, and abort a
   * stream that finished. A number above any the session opened was never a stream: refused.
   */
  #live(connection: AgentConnection, session: number, id: number): RelayStream | undefined {
    const member = findMemberSession(connection, session, true);
    const stream = this.#bySession.get(member)?.get(id);
    if (stream === undefined && id > (this.#highestOpened.get(member) ?? 0))
      throw new DmzError('RELAY_ERR_NO_SUCH_STREAM', `no stream ${id} in session ${session}`);
    return stream;
  }

  #finish(stream: RelayStream, reason: string): void {
    const streams = this.#bySession.get(stream.session);
    if (streams?.get(stream.id) !== stream) return;
    streams.delete(stream.id);
    if (streams.size === 0) this.#bySession.delete(stream.session);
    for (const member of [stream.session.it, stream.session.ot]) this.#count(member, -1);
    this.#ctx.metrics.tunnelStreams.dec();
    this.#ctx.audit.record(stream.accepted ? AUDIT_EVENT.tunnelClosed : AUDIT_EVENT.tunnelRefused, {
      ...this.#describe(stream),
      reason,
      bytesToOt: stream.bytesToOt,
      bytesToIt: stream.bytesToIt,
      durationMs: this.#ctx.now() - stream.openedAt,
    });
  }

  #describe(stream: RelayStream): Record<string, unknown> {
    return {
      session: stream.session.id,
      stream: stream.id,
      it: stream.session.it.name,
      ot: stream.session.ot.name,
      service: stream.service,
    };
  }

  #count(connection: AgentConnection, delta: number): void {
    const count = (this.#perAgent.get(connection) ?? 0) + delta;
    if (count === 0) this.#perAgent.delete(connection);
    else this.#perAgent.set(connection, count);
  }
}
